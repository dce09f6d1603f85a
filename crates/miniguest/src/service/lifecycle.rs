//! Starting, stopping and restarting defined guests through the backend
//! `create --define` recorded, keeping what a running guest booted as a GC
//! root.

use std::time::Duration;

use anyhow::{Context, Result};

use super::{defined, DefinedGuest};
use crate::backend::{GuestSpec, State};
use crate::guest::{booted, GuestName, Layout};

/// How to stop a guest.
#[derive(Debug, Clone, Copy)]
pub struct StopOptions {
    /// Kill it instead of asking it to shut down.
    pub force: bool,
    pub timeout: Duration,
}

impl Default for StopOptions {
    fn default() -> Self {
        StopOptions {
            force: false,
            timeout: Duration::from_secs(60),
        }
    }
}

/// The defined guest, or an error saying how to define it.
pub fn require_defined(layout: &Layout, name: &GuestName) -> Result<DefinedGuest> {
    defined(layout, name)?.with_context(|| {
        format!(
            "guest {name} is not defined in a hypervisor: run `miniguest create {name} --define` first (plain QEMU guests run in the foreground with `miniguest run`)"
        )
    })
}

/// Starts the guest (the caller holds its lock), rooting what it boots
/// before the hypervisor reads it.
pub fn start(layout: &Layout, name: &GuestName, guest: &DefinedGuest) -> Result<()> {
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
    // What the hook stages, where the hook may not run (it would build the
    // same again, and an LXC container's before its idmapped views exist).
    if !guest.placement.location.kind().always_runs_the_hook() {
        super::credentials::stage(&guest.placement, name)?;
        super::store_view::prepare(&guest.placement, name, &output)?;
    }
    if let Err(e) = guest.backend.start(name) {
        let _ = booted::clear(name);
        return Err(e);
    }
    println!("started guest {name}: {}", output.display());
    Ok(())
}

pub fn stop(name: &GuestName, guest: &DefinedGuest, how: StopOptions) -> Result<()> {
    guest.backend.stop(name, how.force, how.timeout)?;
    booted::clear(name)?;
    println!("stopped guest {name}");
    Ok(())
}

pub fn restart(
    layout: &Layout,
    name: &GuestName,
    guest: &DefinedGuest,
    how: StopOptions,
) -> Result<()> {
    stop(name, guest, how)?;
    start(layout, name, guest)
}

/// Restarts a defined, running guest that runs something else than its
/// current output (after an upgrade); says whether it did. The caller
/// holds the guest's lock.
pub fn restart_if_needed(layout: &Layout, name: &GuestName, how: StopOptions) -> Result<bool> {
    let Some(guest) = defined(layout, name)? else {
        return Ok(false);
    };
    if guest.backend.state(name)? != State::Running {
        return Ok(false);
    }
    let current = layout.link(name).canonicalize().ok();
    if booted::running(name).is_some() && booted::running(name) == current {
        return Ok(false);
    }
    restart(layout, name, &guest, how)?;
    Ok(true)
}

/// Waits until the guest says its boot has finished, at most `limit`, and
/// says so; fails naming the guest when it is not ready in time or booted
/// degraded.
pub fn wait_ready(layout: &Layout, name: &GuestName, limit: Duration) -> Result<()> {
    use crate::backend::exec::Readiness;
    let channel = super::exec::Channel::open(layout, name)?;
    match channel.wait_ready(limit)? {
        Readiness::Ready => {
            println!("guest {name} is ready");
            Ok(())
        }
        Readiness::Degraded => {
            anyhow::bail!("guest {name} booted, but degraded (some unit failed)")
        }
        Readiness::NotReady => anyhow::bail!(
            "guest {name} did not become ready within {} s",
            limit.as_secs()
        ),
    }
}
