//! The flake reference a guest was installed from, so that `upgrade` can
//! rebuild it. Kept beside the profile rather than inside a generation, so
//! it survives rollbacks; `install --force` rewrites it.

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

/// Replaced whole (see `replace_file`): a reader sees the old record or
/// the new one.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    crate::layout::replace_file(path, &bytes)
}
