//! The flake reference a guest was installed from, so that `upgrade` can
//! rebuild it. Kept beside the profile rather than inside a generation, so
//! it survives rollbacks; `install --force` rewrites it.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use crate::installable::Installable;

pub fn read(path: &Path) -> Result<Option<Installable>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("corrupt origin record {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

pub fn write(path: &Path, origin: &Installable) -> Result<()> {
    write_json(path, origin)
}

/// Written to a temporary file and renamed into place: a reader sees the old
/// record or the new one, never a torn write.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let dir = path.parent().context("record path has no parent")?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    serde_json::to_writer_pretty(&mut tmp, value)?;
    tmp.write_all(b"\n")?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
