//! `miniguest hook started|stopped NAME …`, run by LXC, libvirt's QEMU hook
//! and the nspawn drop-in around a guest's life: roots what it boots,
//! however it was started, and, for LXC containers, mounts the idmapped
//! views of their program before their namespaces exist (see
//! `backend::container::idmapped`).

use anyhow::{Context, Result};

use crate::backend::container::idmap::IdMap;
use crate::backend::container::idmapped;
use crate::contract::files;
use crate::guest::{booted, GuestName, Layout};
use crate::nix::store_path::store_dir;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Started,
    /// The hypervisor has started it (libvirt's `started`).
    Running,
    Stopped,
}

impl std::str::FromStr for Event {
    type Err = String;

    fn from_str(word: &str) -> Result<Self, String> {
        match word {
            "started" => Ok(Event::Started),
            "running" => Ok(Event::Running),
            "stopped" => Ok(Event::Stopped),
            other => Err(format!("unknown hook event {other:?}")),
        }
    }
}

pub fn run(layout: &Layout, name: &GuestName, event: Event, view: Option<IdMap>) -> Result<()> {
    let views = idmapped::lxc_view_dir(name.as_str());
    match event {
        Event::Started => {
            let output = layout
                .link(name)
                .canonicalize()
                .with_context(|| format!("guest {name} is not installed"))?;
            if let Some(map) = view {
                idmapped::mount_view(&store_dir(), &views.join("store"), map)?;
                idmapped::mount_view(&output.join(files::BOOT_DIR), &views.join("boot"), map)?;
            }
            if let Some(placement) = super::placement::read(layout, name)? {
                super::credentials::stage(&placement, name)?;
                super::store_view::prepare(&placement, name, &output)?;
            }
            booted::record(name, &output)
        }
        Event::Running => super::store_view::detach_from_host(name),
        Event::Stopped => {
            if view.is_some() {
                for part in ["store", "boot"] {
                    idmapped::unmount_view(&views.join(part))?;
                    let _ = std::fs::remove_dir(views.join(part));
                }
                let _ = std::fs::remove_dir(&views);
            }
            super::credentials::unstage(name)?;
            super::store_view::remove(name)?;
            booted::clear(name)
        }
    }
}
