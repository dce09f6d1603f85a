//! What a running guest booted, kept as a Nix GC root while it runs:
//! `NIX_STATE_DIR/gcroots/miniguest/NAME` links to the guest output it
//! started from. An upgrade moves the profile on, and `nix-collect-garbage
//! -d` may then delete old generations; the root keeps the closure the
//! guest is running from. The root goes once the guest has stopped, when
//! Miniguest next looks (status, start, stop, remove).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::fs::remove_if_exists;
use crate::guest::GuestName;

pub fn roots_dir() -> PathBuf {
    let state = std::env::var_os("NIX_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/nix/var/nix"));
    state.join("gcroots/miniguest")
}

fn root(name: &GuestName) -> PathBuf {
    roots_dir().join(name.as_str())
}

/// Records that `name` is running from `output` (a store path).
pub fn record(name: &GuestName, output: &Path) -> Result<()> {
    let dir = roots_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    crate::fs::replace_symlink(&root(name), output)
        .with_context(|| format!("cannot create the GC root for {name}"))
}

/// The output the guest booted, if a root records one.
pub fn get(name: &GuestName) -> Option<PathBuf> {
    std::fs::read_link(root(name)).ok()
}

pub fn clear(name: &GuestName) -> Result<()> {
    remove_if_exists(&root(name))
}
