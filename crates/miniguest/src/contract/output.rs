//! The one check of a guest output's layout, shared by every command that
//! installs a guest or hands one to a hypervisor.
//!
//! A guest output is built by the guest's flake, so it is untrusted: a
//! `boot` that links to `/`, or a `kernel` that links to `/etc/shadow`, would
//! have the hypervisor (running as root) share or read a host file. Every
//! path a backend uses must therefore resolve to something inside the Nix
//! store, whose contents are world-readable and immutable anyway.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::{files, GuestType, Manifest};
use crate::nix::store_path::store_dir;

/// Reads the manifest of the guest output at `root` (a store path or a link
/// to one) and checks that the layout is what the contract says and that
/// every part resolves inside the Nix store.
pub fn inspect(root: &Path) -> Result<Manifest> {
    let store = store_dir();
    let resolved = resolve_in_store(root, &store, "the guest output")?;
    for manifest in [files::MANIFEST, files::LEGACY_MANIFEST] {
        let path = root.join(manifest);
        if path.symlink_metadata().is_ok() {
            resolve_in_store(&path, &store, manifest)?;
        }
    }
    let manifest = Manifest::load(&resolved)?;
    let boot = resolve_in_store(&root.join(files::BOOT_DIR), &store, files::BOOT_DIR)?;
    if !boot.is_dir() {
        bail!("{}: {} is not a directory", root.display(), files::BOOT_DIR);
    }
    regular_file(root, files::INIT, &store)?;
    if manifest.guest_type == GuestType::Qemu {
        regular_file(root, files::KERNEL, &store)?;
        regular_file(root, files::INITRD, &store)?;
    }
    Ok(manifest)
}

fn regular_file(root: &Path, rel: &str, store: &Path) -> Result<PathBuf> {
    let path = resolve_in_store(&root.join(rel), store, rel)?;
    if !path.is_file() {
        bail!("{}: {rel} is not a regular file", root.display());
    }
    Ok(path)
}

/// Follows every link in `path` and requires the result to lie inside a
/// store path: not the store directory itself, and nothing outside it.
fn resolve_in_store(path: &Path, store: &Path, what: &str) -> Result<PathBuf> {
    let resolved = path
        .canonicalize()
        .with_context(|| format!("guest output is missing {what} ({})", path.display()))?;
    // The store directory may itself be reached through a link.
    let store = store.canonicalize().unwrap_or_else(|_| store.to_owned());
    match resolved.strip_prefix(&store) {
        Ok(rest) if rest.components().next().is_some() => Ok(resolved),
        _ => bail!(
            "{what} of the guest output resolves to {}, outside the Nix store {}; refusing it",
            resolved.display(),
            store.display()
        ),
    }
}
