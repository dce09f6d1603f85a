//! The flake reference a guest was installed from, so that `upgrade` can
//! rebuild it. Kept beside the profile rather than inside a generation, so
//! it survives rollbacks; `install --force` rewrites it.

use std::path::Path;

use anyhow::Result;

use crate::nix::installable::Installable;

pub fn read(path: &Path) -> Result<Option<Installable>> {
    crate::fs::read_json(path)
}

pub fn write(path: &Path, origin: &Installable) -> Result<()> {
    crate::fs::write_json(path, origin)
}
