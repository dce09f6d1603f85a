//! start, stop and restart, through the backend `create --define` recorded.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::backends::lifecycle::{self, Lifecycle, State};
use crate::backends::GuestSpec;
use crate::backends::{idmap, idmapped};
use crate::cli::{HookArgs, RestartArgs, StopArgs};
use crate::commands::parse_name;
use crate::guest_name::GuestName;
use crate::layout::Layout;
use crate::placement::{self, Location, Placement};
use crate::store_path::store_dir;
use crate::{booted, lock};

/// A defined guest and the backend it lives in.
pub(crate) struct Defined {
    pub placement: Placement,
    pub backend: Box<dyn Lifecycle>,
}

pub(crate) fn defined(layout: &Layout, name: &GuestName) -> Result<Option<Defined>> {
    let Some(placement) = placement::read(layout, name)? else {
        return Ok(None);
    };
    let idmap = match placement.location {
        Location::Lxc { .. } | Location::Nspawn { .. } if !placement.unsafe_unmapped_root => {
            Some(idmap::for_root_on_host()?)
        }
        _ => None,
    };
    let backend = lifecycle::for_location(&placement.location, idmap, placement.autostart);
    Ok(Some(Defined { placement, backend }))
}

fn require_defined(layout: &Layout, name: &GuestName) -> Result<Defined> {
    defined(layout, name)?.with_context(|| {
        format!(
            "guest {name} is not defined in a hypervisor: run `miniguest create {name} --define` first (plain QEMU guests run in the foreground with `miniguest run`)"
        )
    })
}

pub fn start(layout: &Layout, name: &str) -> Result<()> {
    let name = parse_name(name)?;
    let _lock = lock::lock(layout, &name)?;
    let guest = require_defined(layout, &name)?;
    start_defined(layout, &name, &guest)
}

fn start_defined(layout: &Layout, name: &GuestName, guest: &Defined) -> Result<()> {
    if guest.backend.state(name)? == State::Running {
        println!("guest {name} is already running");
        return Ok(());
    }
    // The output is checked again, and rooted before the hypervisor reads
    // it: the lock keeps upgrades out until the guest has started.
    let spec = GuestSpec::resolve(layout, name, &guest.placement.options)?;
    let output = spec
        .root
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", spec.root.display()))?;
    booted::record(name, &output)?;
    if let Err(e) = guest.backend.start(name) {
        let _ = booted::clear(name);
        return Err(e);
    }
    println!("started guest {name}: {}", output.display());
    Ok(())
}

pub fn stop(layout: &Layout, args: &StopArgs) -> Result<()> {
    let name = parse_name(&args.name)?;
    let _lock = lock::lock(layout, &name)?;
    let guest = require_defined(layout, &name)?;
    stop_defined(&name, &guest, args)
}

fn stop_defined(name: &GuestName, guest: &Defined, args: &StopArgs) -> Result<()> {
    guest
        .backend
        .stop(name, args.force, Duration::from_secs(args.timeout))?;
    booted::clear(name)?;
    println!("stopped guest {name}");
    Ok(())
}

pub fn restart(layout: &Layout, args: &RestartArgs) -> Result<()> {
    let name = parse_name(&args.stop.name)?;
    let _lock = lock::lock(layout, &name)?;
    if args.if_needed {
        return restart_if_needed(layout, &name, &args.stop);
    }
    let guest = require_defined(layout, &name)?;
    stop_defined(&name, &guest, &args.stop)?;
    start_defined(layout, &name, &guest)
}

/// Restarts a defined, running guest whose booted output is not its
/// current one (after an upgrade). The caller holds the guest's lock.
pub(crate) fn restart_if_needed(layout: &Layout, name: &GuestName, stop: &StopArgs) -> Result<()> {
    let Some(guest) = defined(layout, name)? else {
        return Ok(());
    };
    if guest.backend.state(name)? != State::Running {
        return Ok(());
    }
    let current = layout.link(name).canonicalize().ok();
    if booted::get(name).is_some() && booted::get(name) == current {
        return Ok(());
    }
    stop_defined(name, &guest, stop)?;
    start_defined(layout, name, &guest)
}

/// `miniguest hook started|stopped NAME …`, run by LXC and by libvirt's QEMU
/// hook around a guest's life: roots what it boots, however it was started,
/// and, for LXC containers, mounts the idmapped views of their program
/// before their namespaces exist (see `backends::idmapped`).
pub fn hook(layout: &Layout, args: &HookArgs) -> Result<()> {
    let name = parse_name(&args.name)?;
    let views = idmapped::lxc_view_dir(name.as_str());
    match args.event.as_str() {
        "started" => {
            let output = layout
                .link(&name)
                .canonicalize()
                .with_context(|| format!("guest {name} is not installed"))?;
            if let Some(map) = args.idmapped_view {
                idmapped::mount_view(&store_dir(), &views.join("store"), map)?;
                idmapped::mount_view(
                    &output.join(crate::manifest::layout::BOOT_DIR),
                    &views.join("boot"),
                    map,
                )?;
            }
            booted::record(&name, &output)
        }
        "stopped" => {
            if args.idmapped_view.is_some() {
                for view in ["store", "boot"] {
                    idmapped::unmount_view(&views.join(view))?;
                    let _ = std::fs::remove_dir(views.join(view));
                }
                let _ = std::fs::remove_dir(&views);
            }
            booted::clear(&name)
        }
        other => anyhow::bail!("unknown hook event {other:?}"),
    }
}
