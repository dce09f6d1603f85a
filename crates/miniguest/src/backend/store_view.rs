//! A guest's closure-only view of the store: a read-only tmpfs holding one
//! read-only bind mount per path of the guest's closure (symlinks copied
//! as symlinks), and nothing else. No image and no copy: each bind is the
//! host's own store path.
//!
//! A view is built where its consumer will take it from (in `run`'s
//! private mount namespace, or on the host under a private parent so that
//! it propagates nowhere), and the consumer's namespace copies it: QEMU's
//! (9p), `miniguest-virtiofsd`'s, or the container's. A view on the host is
//! removed once its consumer has its copy, or when the guest stops. New
//! paths (`upgrade --switch`) are added inside the consumer's namespace.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::mount::{
    mount, mount_bind, mount_change, mount_remount, move_mount, open_tree, unmount, MountFlags,
    MountPropagationFlags, MoveMountFlags, OpenTreeFlags, UnmountFlags,
};
use serde::{Deserialize, Serialize};

use crate::contract::registration;
use crate::guest::GuestName;

/// What of the host's store a guest sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StoreView {
    /// The whole store, read-only.
    #[default]
    Full,
    /// Only the paths of the guest's own closure.
    Closure,
}

impl StoreView {
    pub fn is_full(&self) -> bool {
        *self == StoreView::Full
    }
}

/// The private parent of every view on the host.
pub fn views_root() -> PathBuf {
    PathBuf::from("/run/miniguest/views")
}

/// Where guest `name`'s view is mounted, on the host or in `run`'s
/// namespace, and where QEMU and virtiofsd are told the store is.
pub fn view_dir(name: &GuestName) -> PathBuf {
    views_root().join(name.as_str()).join("store")
}

/// The closure a guest may see: the paths its output registers, each of
/// which must be in the closure Nix computes for the output (a guest
/// cannot widen its view by listing another guest's paths).
pub fn closure(output: &Path, store_dir: &Path) -> Result<Vec<String>> {
    let registered = registration::closure(output, store_dir)?;
    let requisites: std::collections::HashSet<String> = crate::nix::requisites(output)?
        .into_iter()
        .filter_map(|p| Some(p.file_name()?.to_str()?.to_owned()))
        .collect();
    if let Some(stray) = registered.iter().find(|n| !requisites.contains(*n)) {
        bail!(
            "{}: lists {}/{stray}, which is not in the guest's closure",
            output.join(crate::contract::files::REGISTRATION).display(),
            store_dir.display()
        );
    }
    Ok(registered)
}

/// Makes `views_root` a private mount, once: views mounted below it
/// propagate into no other namespace, and none into it.
fn private_parent() -> Result<()> {
    let root = views_root();
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    if !is_mount_point(&root)? {
        mount_bind(&root, &root).with_context(|| format!("cannot bind {}", root.display()))?;
    }
    mount_change(&root, MountPropagationFlags::PRIVATE)
        .with_context(|| format!("cannot make {} private", root.display()))?;
    Ok(())
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

/// mountinfo writes space, tab, newline and backslash as octal escapes.
fn unescape(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Builds the view of `names` at `target`, binding each from `source` (the
/// store, or a read-only idmapped view of it), replacing whatever view was
/// there. `owner`: who owns the view's root (a container's root).
pub fn build(
    target: &Path,
    source: &Path,
    names: &[String],
    owner: Option<(u32, u32)>,
) -> Result<()> {
    if target.starts_with(views_root()) {
        private_parent()?;
    }
    std::fs::create_dir_all(target)
        .with_context(|| format!("cannot create {}", target.display()))?;
    remove(target)?;
    let mut options = String::from("mode=0755,size=16m");
    if let Some((uid, gid)) = owner {
        options.push_str(&format!(",uid={uid},gid={gid}"));
    }
    mount(
        "miniguest-view",
        target,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        std::ffi::CString::new(options)?.as_c_str(),
    )
    .with_context(|| format!("cannot mount a tmpfs at {}", target.display()))?;
    let built = (|| {
        // One read-only bind of the source, so that every path bound from
        // it is read-only without a remount of its own.
        let ro = read_only_clone(source)?;
        for name in names {
            add_one(&ro, target, name)?;
        }
        // Read-only for every mount of it; the file system itself stays
        // writable, for paths a switch adds.
        mount_remount(
            target,
            MountFlags::BIND | MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV,
            "",
        )
        .with_context(|| format!("cannot make {} read-only", target.display()))
    })();
    if built.is_err() {
        let _ = remove(target);
    }
    built
}

/// A detached, read-only clone of the mount at `dir`.
fn read_only_clone(dir: &Path) -> Result<OwnedFd> {
    let tree = open_tree(
        rustix::fs::CWD,
        dir,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )
    .with_context(|| format!("cannot clone the mount at {}", dir.display()))?;
    set_attributes(
        &tree,
        libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV,
        0,
    )?;
    Ok(tree)
}

/// Mounts over `dir` a read-only copy of everything mounted there,
/// submounts included (a view's binds), so that nothing below `dir` can be
/// written through this namespace.
pub fn cover_read_only(dir: &Path) -> Result<()> {
    let tree = open_tree(
        rustix::fs::CWD,
        dir,
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_RECURSIVE,
    )
    .with_context(|| format!("cannot clone the mounts at {}", dir.display()))?;
    set_attributes_at(&tree, libc::AT_RECURSIVE, libc::MOUNT_ATTR_RDONLY, 0)
        .with_context(|| format!("cannot make {} read-only", dir.display()))?;
    move_mount(
        tree.as_fd(),
        "",
        rustix::fs::CWD,
        dir,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .with_context(|| format!("cannot cover {}", dir.display()))?;
    Ok(())
}

fn set_attributes(tree: &OwnedFd, set: u64, clear: u64) -> Result<()> {
    set_attributes_at(tree, 0, set, clear)
}

/// `mount_setattr` on a mount descriptor (and, with AT_RECURSIVE, on every
/// mount below it).
fn set_attributes_at(tree: &OwnedFd, flags: libc::c_int, set: u64, clear: u64) -> Result<()> {
    let attr = libc::mount_attr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
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
        bail!(
            "cannot change a mount's attributes: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Adds store path `name` to the view at `target`, bound from the
/// read-only tree `ro`.
fn add_one(ro: &OwnedFd, target: &Path, name: &str) -> Result<()> {
    use rustix::fs::{openat, statat, AtFlags, FileType, Mode, OFlags};
    let at = target.join(name);
    let stat = statat(ro, name, AtFlags::SYMLINK_NOFOLLOW)
        .with_context(|| format!("closure path {name} is not in the store"))?;
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::Symlink => {
            let to = rustix::fs::readlinkat(ro, name, Vec::new())?;
            std::os::unix::fs::symlink(to.to_string_lossy().as_ref(), &at)
                .with_context(|| format!("cannot create {}", at.display()))?;
            return Ok(());
        }
        FileType::Directory => {
            std::fs::create_dir(&at).with_context(|| format!("cannot create {}", at.display()))?
        }
        FileType::RegularFile => {
            std::fs::File::create(&at)
                .with_context(|| format!("cannot create {}", at.display()))?;
        }
        other => bail!("closure path {name} is a {other:?}, not a file, directory or link"),
    }
    // A clone of just that path, attached at its place in the view.
    let path = openat(
        ro,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let tree = open_tree(
        &path,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_EMPTY_PATH,
    )
    .with_context(|| format!("cannot clone {name}"))?;
    move_mount(
        tree.as_fd(),
        "",
        rustix::fs::CWD,
        &at,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .with_context(|| format!("cannot bind {name} into the view"))?;
    Ok(())
}

/// For a guest whose hypervisor this process starts (`run`): moves this
/// process into a mount namespace of its own and builds the guest's view
/// there, where QEMU and virtiofsd, its children, find it. The host's
/// mount table never holds it.
pub fn build_in_own_namespace(spec: &super::GuestSpec) -> Result<()> {
    use rustix::thread::{unshare_unsafe, UnshareFlags};
    let output = spec
        .root
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", spec.root.display()))?;
    let names = closure(&output, &spec.store_dir)?;
    // SAFETY: only the mount namespace is unshared, before any thread or
    // child exists.
    unsafe { unshare_unsafe(UnshareFlags::NEWNS) }
        .context("cannot enter a private mount namespace")?;
    // Mounts the host makes still reach it; none made here reach the host.
    mount_change(
        "/",
        MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
    )
    .context("cannot make mounts private")?;
    build(&view_dir(&spec.name), &spec.store_dir, &names, None)
}

/// Removes the view at `target` (every bind in it goes with it); none
/// there is fine.
pub fn remove(target: &Path) -> Result<()> {
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
    fn a_view_holds_exactly_its_paths_read_only() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: mounting a view needs root");
            return;
        }
        let store = tempfile::tempdir().unwrap();
        for d in ["aaa-dir", "bbb-other"] {
            std::fs::create_dir(store.path().join(d)).unwrap();
            std::fs::write(store.path().join(d).join("f"), d).unwrap();
        }
        std::fs::write(store.path().join("ccc-file"), "c").unwrap();
        std::os::unix::fs::symlink("aaa-dir/f", store.path().join("ddd-link")).unwrap();
        // A bind of the source, as the store is a mount of its own.
        let source = tempfile::tempdir().unwrap();
        mount_bind(store.path(), source.path()).unwrap();
        let view = tempfile::tempdir().unwrap();
        let names: Vec<String> = ["aaa-dir", "ccc-file", "ddd-link"]
            .map(String::from)
            .to_vec();
        let built = build(view.path(), source.path(), &names, None);
        let _ = unmount(source.path(), UnmountFlags::DETACH);
        built.unwrap();
        let mut seen: Vec<String> = std::fs::read_dir(view.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        seen.sort();
        assert_eq!(seen, names);
        assert_eq!(
            std::fs::read_to_string(view.path().join("aaa-dir/f")).unwrap(),
            "aaa-dir"
        );
        assert_eq!(
            std::fs::read_to_string(view.path().join("ccc-file")).unwrap(),
            "c"
        );
        assert_eq!(
            std::fs::read_to_string(view.path().join("ddd-link")).unwrap(),
            "aaa-dir"
        );
        let e = std::fs::write(view.path().join("aaa-dir/g"), "x").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EROFS));
        let e = std::fs::write(view.path().join("new"), "x").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EROFS));
        remove(view.path()).unwrap();
        assert_eq!(std::fs::read_dir(view.path()).unwrap().count(), 0);
    }
}
