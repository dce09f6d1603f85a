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

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::mount::{
    mount, mount_bind, mount_change, mount_remount, move_mount, open_tree, MountFlags,
    MountPropagationFlags, MoveMountFlags, OpenTreeFlags,
};
use serde::{Deserialize, Serialize};

use super::mounts;
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
    if !mounts::is_mount_point(&root)? {
        mount_bind(&root, &root).with_context(|| format!("cannot bind {}", root.display()))?;
    }
    mount_change(&root, MountPropagationFlags::PRIVATE)
        .with_context(|| format!("cannot make {} private", root.display()))?;
    Ok(())
}

/// The source its tmpfs shows in every mount table, by which `holders`
/// finds each copy of guest `name`'s view (virtiofsd's sandbox has it at
/// its root).
fn label(name: &GuestName) -> String {
    format!("miniguest-view-{name}")
}

/// Builds guest `name`'s view of `names` at `target`, binding each from
/// `source` (the store, or a read-only idmapped view of it), replacing
/// whatever view was there. `owner`: who owns the view's root (a
/// container's root).
pub fn build(
    name: &GuestName,
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
        label(name).as_str(),
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
    clone_mount(
        dir,
        libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV,
        0,
    )
}

/// A detached, writable clone of the mount at `dir` (the same file
/// system, so what is made through it appears in every copy).
fn writable_clone(dir: &Path) -> Result<OwnedFd> {
    clone_mount(dir, 0, libc::MOUNT_ATTR_RDONLY)
}

/// A detached clone of the mount at `dir`, with attributes set and cleared.
fn clone_mount(dir: &Path, set: u64, clear: u64) -> Result<OwnedFd> {
    let tree = open_tree(
        rustix::fs::CWD,
        dir,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )
    .with_context(|| format!("cannot clone the mount at {}", dir.display()))?;
    set_attributes(&tree, set, clear)?;
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

fn set_attributes_at(tree: &OwnedFd, flags: libc::c_int, set: u64, clear: u64) -> Result<()> {
    mounts::set_attributes(tree, flags, set, clear, None)
        .context("cannot change a mount's attributes")
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

/// Moves this process (single-threaded: before any thread or child
/// exists) into a mount namespace of its own, whose mounts propagate
/// neither to the host nor from it.
pub fn enter_private_mount_namespace() -> Result<()> {
    use rustix::thread::{unshare_unsafe, UnshareFlags};
    // SAFETY: only the mount namespace is unshared, which affects this
    // process and what it starts.
    unsafe { unshare_unsafe(UnshareFlags::NEWNS) }
        .context("cannot enter a private mount namespace")?;
    mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .context("cannot make mounts private")
}

/// For a guest whose hypervisor this process starts (`run`): moves this
/// process into a mount namespace of its own and builds the guest's view
/// there, where QEMU and virtiofsd, its children, find it. The host's
/// mount table never holds it.
pub fn build_in_own_namespace(spec: &super::GuestSpec) -> Result<()> {
    let output = spec
        .root
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", spec.root.display()))?;
    let names = closure(&output, &spec.store_dir)?;
    enter_private_mount_namespace()?;
    build(
        &spec.name,
        &view_dir(&spec.name),
        &spec.store_dir,
        &names,
        None,
    )
}

/// A mount namespace holding a copy of a guest's view: a process in it,
/// and where the view is mounted there, relative to that process's root.
#[derive(Debug, Clone)]
pub struct Holder {
    pub pid: u32,
    pub at: PathBuf,
}

/// Every namespace but this one holding a copy of guest `name`'s view
/// (QEMU's for 9p, virtiofsd's sandbox for virtiofs, `run`'s), one process
/// of each, with where the copy is mounted. Only namespaces of the host's
/// own user namespace count: anyone may name a tmpfs after a view inside a
/// container, and binds added there would not be locked read-only.
pub fn holders(name: &GuestName) -> Result<Vec<Holder>> {
    let label = label(name);
    let own = std::fs::read_link("/proc/self/ns/mnt").ok();
    let host_userns = std::fs::read_link("/proc/self/ns/user")?;
    let mut seen = vec![];
    let mut out = vec![];
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(ns) = std::fs::read_link(format!("/proc/{pid}/ns/mnt")) else {
            continue;
        };
        if Some(&ns) == own.as_ref() || seen.contains(&ns) {
            continue;
        }
        if std::fs::read_link(format!("/proc/{pid}/ns/user"))
            .ok()
            .as_ref()
            != Some(&host_userns)
        {
            continue;
        }
        let Ok(info) = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")) else {
            continue;
        };
        if let Some(at) = mounts::mount_point_of(&info, &label) {
            seen.push(ns);
            let relative = at.strip_prefix("/").unwrap_or(&at);
            out.push(Holder {
                pid,
                at: if relative.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    relative.to_path_buf()
                },
            });
        }
    }
    Ok(out)
}

/// One path to add to a view: its name, and either the link it is or a
/// detached read-only clone of it to attach.
enum Addition {
    Link(std::ffi::CString, std::ffi::CString),
    Mount(std::ffi::CString, OwnedFd),
}

/// Adds to `holder`'s view every path of `names` it lacks, bound from
/// `source` as `build` binds them (`upgrade --switch`: the new closure's
/// paths appear before the guest switches to it). The entries are made
/// through a writable clone of a mount of the view's file system (the
/// host's view where there is one, else the holder's own). For a
/// container (`userns_of`: its init), the binds are first copied into a
/// mount namespace of the container's user namespace, which locks them
/// read-only as the view's own binds are. Returns how many were added.
pub fn extend(
    holder: &Holder,
    host_view: Option<&Path>,
    source: &Path,
    names: &[String],
    userns_of: Option<u32>,
) -> Result<usize> {
    use rustix::fs::{readlinkat, statat, AtFlags, FileType};
    let ro = read_only_clone(source)?;
    let seen = Path::new("/proc")
        .join(holder.pid.to_string())
        .join("root")
        .join(&holder.at);
    let present: std::collections::HashSet<String> = std::fs::read_dir(&seen)
        .with_context(|| format!("cannot list {}", seen.display()))?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    let mut additions = vec![];
    for name in names.iter().filter(|n| !present.contains(*n)) {
        let c = std::ffi::CString::new(name.as_str())?;
        let stat = statat(&ro, name, AtFlags::SYMLINK_NOFOLLOW)
            .with_context(|| format!("closure path {name} is not in the store"))?;
        additions.push(match FileType::from_raw_mode(stat.st_mode) {
            FileType::Symlink => {
                let to = readlinkat(&ro, name, Vec::new())?;
                Addition::Link(c, std::ffi::CString::new(to.into_bytes())?)
            }
            FileType::Directory | FileType::RegularFile => {
                Addition::Mount(c, clone_path(&ro, name)?)
            }
            other => bail!("closure path {name} is a {other:?}, not a file, directory or link"),
        });
    }
    if additions.is_empty() {
        return Ok(0);
    }
    // Entries first, where the view's file system is writable.
    let host_rw = match host_view {
        Some(dir) if mounts::is_mount_point(dir)? => Some(writable_clone(dir)?),
        _ => None,
    };
    if let Some(rw) = &host_rw {
        make_entries(rw, &additions)?;
    }
    let userns = userns_of
        .map(|pid| std::fs::File::open(format!("/proc/{pid}/ns/user")))
        .transpose()
        .context("cannot open the container's user namespace")?;
    let staging_dir = views_root().join(".staging");
    std::fs::create_dir_all(&staging_dir)?;
    let staging = std::ffi::CString::new(staging_dir.into_os_string().into_encoded_bytes())?;
    let host_has_entries = host_rw.is_some();
    let locked: std::cell::RefCell<Vec<OwnedFd>> =
        std::cell::RefCell::new(Vec::with_capacity(additions.len()));
    let open_dir = |path: &std::ffi::CStr| {
        use rustix::fs::{openat, Mode, OFlags};
        openat(
            rustix::fs::CWD,
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    let clone_flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    in_namespace_of(holder, userns.as_ref(), |step| match step {
        Step::Stage => {
            // A private copy of the host's mounts, with the new binds
            // attached under a tmpfs of its own.
            mount_change(
                c"/",
                MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
            )?;
            mount(
                c"miniguest-staging",
                staging.as_c_str(),
                c"tmpfs",
                MountFlags::empty(),
                c"mode=0700",
            )?;
            let dir = open_dir(staging.as_c_str())?;
            let rw = open_tree(&dir, c"", clone_flags | OpenTreeFlags::AT_EMPTY_PATH)?;
            make_entries_raw(&rw, &additions)?;
            attach_all(&additions, &dir)
        }
        Step::Lock => {
            // Copied into this namespace, the staged binds are locked;
            // so are clones of them.
            let dir = open_dir(staging.as_c_str())?;
            let mut locked = locked.borrow_mut();
            for a in &additions {
                if let Addition::Mount(name, _) = a {
                    locked.push(open_tree(&dir, name.as_c_str(), clone_flags)?);
                }
            }
            Ok(())
        }
        Step::Attach(view) => {
            if !host_has_entries {
                let rw = open_tree(view, c"", clone_flags | OpenTreeFlags::AT_EMPTY_PATH)?;
                mounts::set_attributes(&rw, 0, 0, libc::MOUNT_ATTR_RDONLY, None)?;
                make_entries_raw(&rw, &additions)?;
            }
            let locked = locked.borrow();
            if locked.is_empty() {
                return attach_all(&additions, view);
            }
            let names = additions.iter().filter_map(|a| match a {
                Addition::Mount(name, _) => Some(name),
                Addition::Link(..) => None,
            });
            for (name, tree) in names.zip(locked.iter()) {
                move_mount(
                    tree.as_fd(),
                    c"",
                    view,
                    name.as_c_str(),
                    MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
                )?;
            }
            Ok(())
        }
    })
    .with_context(|| {
        format!(
            "cannot add the new paths to the view of process {}",
            holder.pid
        )
    })?;
    Ok(additions.len())
}

/// Attaches every addition's clone at its entry below `dir`.
fn attach_all(additions: &[Addition], dir: &OwnedFd) -> rustix::io::Result<()> {
    for a in additions {
        if let Addition::Mount(name, tree) = a {
            move_mount(
                tree.as_fd(),
                c"",
                dir,
                name.as_c_str(),
                MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
            )?;
        }
    }
    Ok(())
}

/// What the child of `in_namespace_of` is asked to do: stage the binds in
/// a private namespace (before entering the container's user namespace),
/// clone them once copied into the container's user namespace, then
/// attach them (or those clones) to the view, an O_PATH descriptor.
enum Step<'a> {
    Stage,
    Lock,
    Attach(&'a OwnedFd),
}

/// Makes the directory, file or link each addition needs in the view.
fn make_entries(rw: &OwnedFd, additions: &[Addition]) -> Result<()> {
    make_entries_raw(rw, additions).context("cannot add entries to the view")
}

fn make_entries_raw(rw: &OwnedFd, additions: &[Addition]) -> rustix::io::Result<()> {
    use rustix::fs::{fstat, mkdirat, openat, symlinkat, FileType, Mode, OFlags};
    for a in additions {
        match a {
            Addition::Link(name, to) => symlinkat(to.as_c_str(), rw, name.as_c_str())?,
            Addition::Mount(name, tree) => {
                if FileType::from_raw_mode(fstat(tree)?.st_mode) == FileType::Directory {
                    mkdirat(rw, name.as_c_str(), Mode::from_raw_mode(0o555))?
                } else {
                    drop(openat(
                        rw,
                        name.as_c_str(),
                        OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC,
                        Mode::from_raw_mode(0o444),
                    )?)
                }
            }
        }
    }
    Ok(())
}

fn clone_path(ro: &OwnedFd, name: &str) -> Result<OwnedFd> {
    open_tree(
        ro,
        name,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )
    .with_context(|| format!("cannot clone {name}"))
}

/// Runs `work` in a child process that has entered `holder`'s mount
/// namespace. With `userns` (a container's), the child first stages the
/// binds in a private namespace, enters that user namespace and a mount
/// namespace of its own there (which copies the staged binds with their
/// read-only flag locked), and attaches those copies. The child only makes
/// system calls on what was prepared before it was forked.
fn in_namespace_of(
    holder: &Holder,
    userns: Option<&std::fs::File>,
    work: impl Fn(Step<'_>) -> rustix::io::Result<()>,
) -> Result<()> {
    use rustix::fs::{openat, Mode, OFlags};
    use rustix::thread::{
        move_into_link_name_space, unshare_unsafe, LinkNameSpaceType, UnshareFlags,
    };
    let proc = Path::new("/proc").join(holder.pid.to_string());
    let ns = std::fs::File::open(proc.join("ns/mnt")).context("cannot open its mount namespace")?;
    let root = openat(
        rustix::fs::CWD,
        proc.join("root").as_path(),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .context("cannot open its root")?;
    let at = std::ffi::CString::new(holder.at.as_os_str().as_encoded_bytes())?;
    // SAFETY: the child makes only system calls, on descriptors and
    // strings made before the fork, and leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        bail!("cannot fork: {}", std::io::Error::last_os_error());
    }
    if pid == 0 {
        let result = (|| {
            if let Some(userns) = userns {
                // SAFETY: this child has one thread.
                unsafe { unshare_unsafe(UnshareFlags::NEWNS) }?;
                work(Step::Stage)?;
                move_into_link_name_space(userns.as_fd(), Some(LinkNameSpaceType::User))?;
                unsafe { unshare_unsafe(UnshareFlags::NEWNS) }?;
                work(Step::Lock)?;
            }
            move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Mount))?;
            let view = openat(
                &root,
                at.as_c_str(),
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            work(Step::Attach(&view))
        })();
        let code = match result {
            Ok(()) => 0,
            Err(e) => e.raw_os_error().clamp(1, 255),
        };
        // SAFETY: leaving the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for the child just forked.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    match libc::WEXITSTATUS(status) {
        0 if libc::WIFEXITED(status) => Ok(()),
        code => bail!("{}", std::io::Error::from_raw_os_error(code)),
    }
}

/// Removes the view at `target` (every bind in it goes with it); none
/// there is fine.
pub fn remove(target: &Path) -> Result<()> {
    mounts::detach_all(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tmpfs named after a guest's view counts only in a namespace of the
    /// host's own user namespace: a container cannot pose as a holder.
    #[test]
    fn only_the_hosts_namespaces_hold_views() {
        if !rustix::process::geteuid().is_root()
            || crate::backend::host::find_program("unshare", &[]).is_none()
        {
            eprintln!("skipped: needs root and unshare");
            return;
        }
        let name: GuestName = format!("holder{}", std::process::id()).parse().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let spawn = |userns: bool| {
            let mut cmd = std::process::Command::new("unshare");
            cmd.arg(if userns { "-Urm" } else { "-m" });
            cmd.args([
                "sh",
                "-c",
                &format!(
                    "mount -t tmpfs {} {} && touch {}/ready-{userns} && exec sleep 30",
                    label(&name),
                    dir.path().display(),
                    std::env::temp_dir().display()
                ),
            ]);
            let child = cmd.spawn().unwrap();
            let ready = std::env::temp_dir().join(format!("ready-{userns}"));
            for _ in 0..100 {
                if ready.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let _ = std::fs::remove_file(ready);
            child
        };
        let mut container = spawn(true);
        let mut host = spawn(false);
        let found: Vec<u32> = holders(&name).unwrap().iter().map(|h| h.pid).collect();
        for c in [&mut container, &mut host] {
            let _ = c.kill();
            let _ = c.wait();
        }
        assert!(
            !found.contains(&container.id()),
            "a container's namespace passed as a holder"
        );
        assert!(
            found.contains(&host.id()),
            "the host's own namespace was not found: {found:?}"
        );
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
        let built = build(
            &"web".parse().unwrap(),
            view.path(),
            source.path(),
            &names,
            None,
        );
        let _ = remove(source.path());
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
