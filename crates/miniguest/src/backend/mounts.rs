//! What the idmapped views and the store views share of the kernel's
//! mount interface: `mount_setattr`, which rustix does not wrap; detaching
//! every mount stacked at a place; and reading the mount table.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rustix::mount::{unmount, UnmountFlags};

/// `mount_setattr` on a mount descriptor: sets and clears attributes
/// (idmapped through `userns` with MOUNT_ATTR_IDMAP), on every mount below
/// it too with AT_RECURSIVE in `flags`. It allocates nothing, so a forked
/// child may call it.
pub fn set_attributes(
    tree: &OwnedFd,
    flags: libc::c_int,
    set: u64,
    clear: u64,
    userns: Option<BorrowedFd<'_>>,
) -> rustix::io::Result<()> {
    let attr = libc::mount_attr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: userns.map_or(0, |ns| ns.as_raw_fd() as u64),
    };
    // SAFETY: a valid mount fd, an empty C path and a mount_attr of the
    // size given.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | flags,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if rc != 0 {
        return Err(rustix::io::Errno::from_raw_os_error(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        ));
    }
    Ok(())
}

/// Detaches whatever is mounted at `target`, every mount stacked there
/// and below; nothing there is fine.
pub fn detach_all(target: &Path) -> Result<()> {
    loop {
        match unmount(target, UnmountFlags::DETACH) {
            Ok(()) => continue,
            Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => return Ok(()),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot unmount {}", target.display()))
            }
        }
    }
}

/// Whether a mount sits at `path` in this namespace.
pub fn is_mount_point(path: &Path) -> Result<bool> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(mounted_at(&text, path))
}

fn mounted_at(mountinfo: &str, path: &Path) -> bool {
    let wanted = path.to_string_lossy();
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| unescape(m) == wanted)
}

/// Where the last mount of a file system with this source sits, in a
/// mount table (`/proc/PID/mountinfo`).
pub fn mount_point_of(mountinfo: &str, source: &str) -> Option<PathBuf> {
    mountinfo.lines().rev().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let point = left.split(' ').nth(4)?;
        (right.split(' ').nth(1)? == source).then(|| PathBuf::from(unescape(point)))
    })
}

/// mountinfo writes space, tab, newline and backslash as octal escapes.
fn unescape(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_paths_are_unescaped() {
        let info = "36 35 0:31 / /run/a\\040b rw shared:1 - tmpfs tmpfs rw\n";
        assert!(mounted_at(info, Path::new("/run/a b")));
        assert!(!mounted_at(info, Path::new("/run/a")));
    }

    #[test]
    fn mounts_are_found_by_their_source() {
        let info = "54 89 0:39 / / ro,nosuid - tmpfs miniguest-view-web rw\n60 54 8:1 /nix/store/a /a ro - ext4 /dev/sda1 rw\n";
        assert_eq!(
            mount_point_of(info, "miniguest-view-web"),
            Some(PathBuf::from("/"))
        );
        assert_eq!(mount_point_of(info, "miniguest-view-we"), None);
    }
}
