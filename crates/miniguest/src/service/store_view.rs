//! A defined guest's closure-only store view, on the host while its
//! hypervisor takes its copy: built as the guest starts (by the hook,
//! however it is started, and by `start` where the hook may not run),
//! taken off the host once a VM's QEMU has its own copy, removed when the
//! guest stops.

use std::path::Path;

use anyhow::Result;

use super::placement::Placement;
use crate::backend::container::{self, idmapped};
use crate::backend::mounts;
use crate::backend::store_view::{self, StoreView};
use crate::backend::Location;
use crate::guest::GuestName;
use crate::nix::store_path::store_dir;

/// Builds guest `name`'s view on the host, if it has one: from the store
/// for a VM, from the container's idmapped view of it (owned by the
/// container's root) for a container.
pub fn prepare(placement: &Placement, name: &GuestName, output: &Path) -> Result<()> {
    if placement.options.store_view == StoreView::Full {
        return Ok(());
    }
    let store = store_dir();
    let names = store_view::closure(output, &store)?;
    let target = store_view::view_dir(name);
    match placement.location {
        Location::Libvirt(_) => store_view::build(name, &target, &store, &names, None),
        Location::Lxc(_) | Location::Nspawn(_) => {
            from_container_source(placement, name, &store, |source, owner| {
                store_view::build(name, &target, source, &names, owner)
            })
        }
        Location::Qemu => Ok(()),
    }
}

/// Runs `work` with where a container's view takes its paths from, and
/// who owns the view: the container's idmapped view of the store (LXC's
/// hook mounts it before the container starts; nspawn idmaps only its own
/// binds, so one is mounted for the while), else the store itself.
fn from_container_source<T>(
    placement: &Placement,
    name: &GuestName,
    store: &Path,
    work: impl FnOnce(&Path, Option<(u32, u32)>) -> Result<T>,
) -> Result<T> {
    let map = container::root_map(placement.policy())?;
    let owner = map.map(|m| (m.uid_start as u32, m.gid_start as u32));
    let idmapped_store = idmapped::lxc_view_dir(name.as_str()).join("store");
    match (&placement.location, map) {
        (Location::Nspawn(_), Some(map)) => {
            idmapped::mount_view(store, &idmapped_store, map)?;
            let done = work(&idmapped_store, owner);
            idmapped::unmount_view(&idmapped_store)?;
            done
        }
        _ if mounts::is_mount_point(&idmapped_store)? => work(&idmapped_store, owner),
        _ => work(store, owner),
    }
}

/// Once a libvirt domain runs, its QEMU (and virtiofsd) hold copies of the
/// view in their own mount namespaces: the host's goes. Where QEMU shares
/// the host's namespace (libvirt's `namespaces = []`), it stays until the
/// guest stops.
pub fn detach_from_host(name: &GuestName) -> Result<()> {
    let target = store_view::view_dir(name);
    let pid_file = Path::new("/run/libvirt/qemu").join(format!("{name}.pid"));
    let Ok(pid) = std::fs::read_to_string(&pid_file) else {
        return Ok(());
    };
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
    let qemu = ns(pid.trim());
    if qemu.is_some() && qemu != ns("self") {
        store_view::remove(&target)?;
    }
    Ok(())
}

/// Before a guest switches to `new`: every path of its new closure it
/// cannot see yet is added to its view, wherever the view is (QEMU's or
/// virtiofsd's namespace for a VM, the container's for LXC).
pub fn extend_for_switch(placement: &Placement, name: &GuestName, new: &Path) -> Result<()> {
    if placement.options.store_view == StoreView::Full {
        return Ok(());
    }
    let store = store_dir();
    let names = store_view::closure(new, &store)?;
    let host_view = store_view::view_dir(name);
    let added = match &placement.location {
        Location::Libvirt(_) => {
            let mut holders = store_view::holders(name)?;
            // QEMU in the host's own namespace serves the host's view.
            if mounts::is_mount_point(&host_view)? {
                holders.push(store_view::Holder {
                    pid: std::process::id(),
                    at: host_view
                        .strip_prefix("/")
                        .unwrap_or(&host_view)
                        .to_path_buf(),
                });
            }
            let mut added = 0;
            for holder in &holders {
                added += store_view::extend(holder, None, &store, &names, None)?;
            }
            added
        }
        Location::Lxc(at) => {
            let pid = crate::backend::lxc::init_pid(&at.lxcpath, name)?;
            from_container_source(placement, name, &store, |source, _| {
                extend_container(pid, &host_view, source, &names)
            })?
        }
        Location::Nspawn(_) => {
            let pid = crate::backend::nspawn::leader(name)?;
            from_container_source(placement, name, &store, |source, _| {
                extend_container(pid, &host_view, source, &names)
            })?
        }
        Location::Qemu => 0,
    };
    if added > 0 {
        eprintln!("{name}: {added} new store paths added to its view");
    }
    Ok(())
}

/// A container's view is at its /nix/store; what is added there is
/// locked through its user namespace.
fn extend_container(pid: u32, host_view: &Path, source: &Path, names: &[String]) -> Result<usize> {
    let holder = store_view::Holder {
        pid,
        at: "nix/store".into(),
    };
    store_view::extend(&holder, Some(host_view), source, names, Some(pid))
}

pub fn remove(name: &GuestName) -> Result<()> {
    store_view::remove(&store_view::view_dir(name))
}
