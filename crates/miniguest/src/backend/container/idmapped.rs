//! Read-only, idmapped views of the store and of a guest's `boot/`, for
//! containers whose root is mapped to a subordinate range.
//!
//! Without them every program file shows as owned by `nobody` inside the
//! container (the host's uid 0 has no mapping there), and a real NixOS
//! refuses it: sudo wants its plugins owned by root, sshd's StrictModes its
//! keys, nix-daemon and polkit their files. An idmapped mount shows the
//! host's root as the container's.
//!
//! Such a mount must stay read-only from inside. LXC's own `idmap=container`
//! mount option drops `ro` (and a mount LXC adds later is not locked), so
//! LXC containers get these views from the host instead: made before the
//! container starts, read-only, and then copied into the container's mount
//! namespace, which locks their read-only flag against the container's root.
//! nspawn's `:idmap` bind option does the same by itself.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::mount::{
    mount_bind, mount_change, mount_remount, move_mount, open_tree, MountFlags,
    MountPropagationFlags, MoveMountFlags, OpenTreeFlags,
};

use super::idmap::IdMap;

/// Where the views of an LXC container's program live on the host while it
/// runs: `store` and `boot`, bind-mounted into the container by its config.
pub fn lxc_view_dir(name: &str) -> PathBuf {
    PathBuf::from("/run/miniguest/containers").join(name)
}

/// What a container loses when the program cannot be idmapped.
pub const WITHOUT_IDMAP: &str = "inside the container the store and /boot belong to nobody, so sudo, sshd's key logins (StrictModes), nix-daemon and polkit refuse them";

/// Whether the directories can be mounted idmapped with `map` here (the
/// kernel has idmapped mounts and their file systems allow them); why not,
/// if not. Tried once per directory and process, on a mount never attached
/// anywhere.
pub fn supported(dirs: &[&Path], map: IdMap) -> std::result::Result<(), String> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static SEEN: Mutex<Option<HashMap<PathBuf, std::result::Result<(), String>>>> =
        Mutex::new(None);
    for dir in dirs {
        let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
        let seen = seen.get_or_insert_with(HashMap::new);
        let verdict = seen
            .entry(dir.to_path_buf())
            .or_insert_with(|| {
                userns(map)
                    .and_then(|ns| idmapped_clone(dir, &ns))
                    .map(drop)
                    .map_err(|e| format!("{e:#}"))
            })
            .clone();
        verdict.map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    Ok(())
}

/// Why a container's program (the store and its `/boot`) cannot be shown
/// through `map`, if it cannot.
pub fn program_error(spec: &crate::backend::GuestSpec, map: IdMap) -> Option<String> {
    supported(&[&spec.store_dir, &spec.boot_dir()], map).err()
}

/// The warning for a container whose program is shown unmapped.
pub fn unmapped_warning(why: &str) -> String {
    format!("the store and /boot cannot be idmapped here ({why}): {WITHOUT_IDMAP}")
}

/// Mounts `source` at `target` (a directory, created if need be), read-only,
/// idmapped with `map`; or, where idmapping fails, as a plain read-only
/// bind, saying so. Never writable. A mount already at `target` (left by a
/// crash) is replaced.
pub fn mount_view(source: &Path, target: &Path, map: IdMap) -> Result<()> {
    std::fs::create_dir_all(target)
        .with_context(|| format!("cannot create {}", target.display()))?;
    unmount_view(target)?;
    let idmapped = userns(map).and_then(|ns| idmapped_clone(source, &ns));
    match idmapped {
        Ok(tree) => move_mount(
            tree.as_fd(),
            "",
            rustix::fs::CWD,
            target,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .with_context(|| {
            format!(
                "cannot attach the view of {} at {}",
                source.display(),
                target.display()
            )
        })?,
        Err(e) => {
            eprintln!(
                "warning: cannot idmap {} ({e:#}): {WITHOUT_IDMAP}",
                source.display()
            );
            mount_bind(source, target).with_context(|| {
                format!("cannot bind {} at {}", source.display(), target.display())
            })?;
            mount_remount(target, MountFlags::BIND | MountFlags::RDONLY, "")
                .with_context(|| format!("cannot make {} read-only", target.display()))?;
        }
    }
    // Nothing mounted below it later travels back to the host's tree.
    mount_change(target, MountPropagationFlags::PRIVATE)
        .with_context(|| format!("cannot make {} private", target.display()))?;
    Ok(())
}

/// Detaches whatever is mounted at `target`; nothing there is fine.
pub fn unmount_view(target: &Path) -> Result<()> {
    crate::backend::mounts::detach_all(target)
}

/// A detached, read-only copy of the mount at `dir`, idmapped through the
/// user namespace `ns`: the host's id N shows as the namespace's N.
fn idmapped_clone(dir: &Path, ns: &OwnedFd) -> Result<OwnedFd> {
    let tree = open_tree(
        rustix::fs::CWD,
        dir,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )
    .with_context(|| format!("cannot clone the mount at {}", dir.display()))?;
    crate::backend::mounts::set_attributes(
        &tree,
        0,
        libc::MOUNT_ATTR_IDMAP
            | libc::MOUNT_ATTR_RDONLY
            | libc::MOUNT_ATTR_NOSUID
            | libc::MOUNT_ATTR_NODEV,
        0,
        Some(ns.as_fd()),
    )
    .map_err(|e| anyhow::anyhow!("the kernel refused an idmapped mount: {e}"))?;
    Ok(tree)
}

/// A user namespace whose root is `map`'s first id, as the container's is.
/// A child process enters a new one and waits while this one writes its
/// maps; the namespace outlives the child through the returned descriptor.
fn userns(map: IdMap) -> Result<OwnedFd> {
    let (ready_r, ready_w) = rustix::pipe::pipe().context("cannot make a pipe")?;
    // SAFETY: the child only makes async-signal-safe system calls (unshare,
    // write, pause, _exit) before it is killed.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        bail!("cannot fork: {}", std::io::Error::last_os_error());
    }
    if pid == 0 {
        unsafe {
            let ok = libc::unshare(libc::CLONE_NEWUSER) == 0;
            let byte: u8 = if ok { b'y' } else { b'n' };
            libc::write(ready_w.as_raw_fd(), (&byte as *const u8).cast(), 1);
            loop {
                libc::pause();
            }
        }
    }
    drop(ready_w);
    // Killed and reaped below, whatever happens.
    let child = OwnedPid(pid);
    let mut byte = [0u8];
    let got = rustix::io::read(&ready_r, &mut byte).context("cannot hear from the child")?;
    if got != 1 || byte[0] != b'y' {
        bail!("cannot make a user namespace (are user namespaces allowed?)");
    }
    let proc = PathBuf::from(format!("/proc/{pid}"));
    std::fs::write(
        proc.join("uid_map"),
        format!("0 {} {}\n", map.uid_start, map.count),
    )
    .context("cannot write the namespace's uid map")?;
    std::fs::write(
        proc.join("gid_map"),
        format!("0 {} {}\n", map.gid_start, map.count),
    )
    .context("cannot write the namespace's gid map")?;
    let ns = std::fs::File::open(proc.join("ns/user")).context("cannot open the namespace")?;
    drop(child);
    // SAFETY: a freshly opened descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(ns)) })
}

/// A child process, killed and reaped when dropped.
struct OwnedPid(libc::pid_t);

impl Drop for OwnedPid {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.0, libc::SIGKILL);
            libc::waitpid(self.0, std::ptr::null_mut(), 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    const MAP: IdMap = IdMap {
        uid_start: 100000,
        gid_start: 100000,
        count: 65536,
    };

    #[test]
    fn file_systems_that_cannot_idmap_are_named() {
        if !is_root() {
            eprintln!("skipped: idmapped mounts need root");
            return;
        }
        // procfs never allows idmapped mounts.
        let e = supported(&[Path::new("/proc")], MAP).unwrap_err();
        assert!(e.starts_with("/proc: the kernel refused"), "{e}");
    }

    #[test]
    fn a_view_is_idmapped_read_only_and_goes_away() {
        if !is_root() {
            eprintln!("skipped: idmapped mounts need root");
            return;
        }
        let source = tempfile::tempdir().unwrap();
        if let Err(e) = supported(&[source.path()], MAP) {
            eprintln!("skipped: this machine cannot idmap its temporary directory: {e}");
            return;
        }
        std::fs::write(source.path().join("f"), "x").unwrap();
        let target = tempfile::tempdir().unwrap();
        let view = target.path().join("view");
        mount_view(source.path(), &view, MAP).unwrap();
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(view.join("f")).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (100000, 100000));
        let write = std::fs::write(view.join("g"), "y").unwrap_err();
        assert_eq!(write.raw_os_error(), Some(libc::EROFS), "{write}");
        unmount_view(&view).unwrap();
        assert!(!view.join("f").exists());
    }
}
