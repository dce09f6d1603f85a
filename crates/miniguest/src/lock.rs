//! One lock per guest, so two commands on the same guest run one after the
//! other. The lock file is never deleted: deleting it would let a waiter
//! lock an unlinked inode while a newcomer locks a fresh one.

use std::fs::{File, OpenOptions, TryLockError};

use anyhow::{Context, Result};

use crate::guest_name::GuestName;
use crate::layout::Layout;

pub struct GuestLock {
    _file: File,
}

pub fn lock(layout: &Layout, name: &GuestName) -> Result<GuestLock> {
    layout.ensure_dirs()?;
    let path = layout.lock_file(name);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open lock {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            eprintln!("waiting for another miniguest command on guest {name}...");
            file.lock()
                .with_context(|| format!("cannot lock {}", path.display()))?;
        }
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
    Ok(GuestLock { _file: file })
}
