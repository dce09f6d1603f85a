//! What a running guest booted, and what it was switched to since, kept as
//! Nix GC roots while it runs: `NIX_STATE_DIR/gcroots/miniguest/NAME`
//! links to the guest output it started from (whose `boot/` its share
//! still shows), `…/switched/NAME` to the output `upgrade --switch` applied
//! inside it. An upgrade moves the profile on, and `nix-collect-garbage -d`
//! may then delete old generations; the roots keep the closures the guest
//! uses. They go once the guest has stopped, when Miniguest next looks
//! (status, start, stop, remove).

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

/// A directory of its own: a guest may be named `switched`.
fn switched_root(name: &GuestName) -> PathBuf {
    roots_dir().join("switched").join(name.as_str())
}

fn link(path: &Path, output: &Path, name: &GuestName) -> Result<()> {
    let dir = path.parent().expect("a root in a directory");
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    crate::fs::replace_symlink(path, output)
        .with_context(|| format!("cannot create the GC root for {name}"))
}

/// Records that `name` is running from `output` (a store path), as booted.
pub fn record(name: &GuestName, output: &Path) -> Result<()> {
    remove_if_exists(&switched_root(name))?;
    link(&root(name), output, name)
}

/// Records that the running guest was switched to `output`.
pub fn record_switch(name: &GuestName, output: &Path) -> Result<()> {
    link(&switched_root(name), output, name)
}

/// The output the guest booted, if a root records one.
pub fn get(name: &GuestName) -> Option<PathBuf> {
    std::fs::read_link(root(name)).ok()
}

/// The output the guest runs now: what it was switched to, else what it
/// booted.
pub fn running(name: &GuestName) -> Option<PathBuf> {
    std::fs::read_link(switched_root(name))
        .ok()
        .or_else(|| get(name))
}

pub fn clear(name: &GuestName) -> Result<()> {
    remove_if_exists(&switched_root(name))?;
    remove_if_exists(&root(name))
}
