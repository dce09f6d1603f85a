//! One lock per guest, so two commands on the same guest run one after the
//! other. The lock file is never deleted: deleting it would let a waiter
//! lock an unlinked inode while a newcomer locks a fresh one.

use std::fs::{File, OpenOptions};

use rustix::fs::{flock, FlockOperation};

use anyhow::{Context, Result};

use crate::guest::GuestName;
use crate::guest::Layout;

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
    // flock(2), released when the file closes, as std's File::lock is; rustix
    // keeps the oldest toolchain this builds with lower.
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
            eprintln!("waiting for another miniguest command on guest {name}...");
            flock(&file, FlockOperation::LockExclusive)
                .with_context(|| format!("cannot lock {}", path.display()))?;
        }
        Err(e) => return Err(e).with_context(|| format!("cannot lock {}", path.display())),
    }
    Ok(GuestLock { _file: file })
}
