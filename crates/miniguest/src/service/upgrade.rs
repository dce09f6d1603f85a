//! What an upgrade does to a guest that runs: nothing, a switch inside it
//! (when only stage 2 changed: the new closure is already in its store, the
//! store being shared, or is added to its closure-only view first), or a
//! restart; then, when asked, whether it came up,
//! and if it did not, back to where it was.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::exec::Channel;
use super::lifecycle::{self, StopOptions};
use super::status::changes;
use super::{defined, DefinedGuest};
use crate::backend::exec::Readiness;
use crate::backend::State;
use crate::contract::Manifest;
use crate::guest::{booted, GuestName, Layout};

/// What the caller asked an upgrade to do to a running guest.
#[derive(Debug, Clone, Copy, Default)]
pub struct Apply {
    pub restart: bool,
    pub switch: bool,
    pub no_restart: bool,
    /// Wait this long for the guest to be ready, and roll back if not.
    pub wait: Option<Duration>,
}

/// What the running guest will get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// It runs nothing else than the new output, or nothing was asked.
    Nothing,
    /// `switch-to-configuration switch` of this system, inside it.
    Switch(PathBuf),
    Restart,
}

/// A running guest about to be upgraded, as it was.
pub struct Running {
    guest: DefinedGuest,
    /// What it booted, and what it runs now (switched to since, or booted).
    booted: PathBuf,
    running: PathBuf,
    /// Whether it said it was ready before (only asked when checking).
    was: Option<Readiness>,
}

/// The plan for guest `name` if `new` becomes its current output; refuses
/// (`--no-restart`) before anything changes.
pub fn plan(
    layout: &Layout,
    name: &GuestName,
    new: &Path,
    apply: Apply,
) -> Result<(Plan, Option<Running>)> {
    let nothing = Ok((Plan::Nothing, None));
    if !(apply.restart || apply.switch) {
        return nothing;
    }
    let Some(guest) = defined(layout, name)? else {
        return nothing;
    };
    if guest.backend.state(name)? != State::Running {
        return nothing;
    }
    let current = layout.link(name).canonicalize().ok();
    let booted = booted::get(name).or_else(|| current.clone());
    let running = booted::running(name).or_else(|| current.clone());
    let (Some(booted), Some(running)) = (booted, running) else {
        return nothing;
    };
    let reasons = changes(&booted, &running, new);
    let plan = if reasons.is_empty() {
        Plan::Nothing
    } else if apply.switch && reasons == ["stage2"] {
        match Manifest::load(new)?.toplevel {
            Some(toplevel) => Plan::Switch(PathBuf::from(toplevel.as_str())),
            None if apply.no_restart => bail!(
                "guest {name}: the new output names no system to switch to (its manifest has no toplevel); refusing to restart it (--no-restart)"
            ),
            None => Plan::Restart,
        }
    } else if apply.no_restart {
        bail!(
            "guest {name}: switching it needs only stage 2 to change, but {} changed; refusing to restart it (--no-restart), nothing was upgraded",
            reasons.join(", ")
        );
    } else {
        Plan::Restart
    };
    let was = match (&plan, apply.wait) {
        (Plan::Nothing, _) | (_, None) => None,
        _ => Channel::open(layout, name)
            .ok()
            .and_then(|c| c.readiness(Duration::from_secs(5))),
    };
    Ok((
        plan,
        Some(Running {
            guest,
            booted,
            running,
            was,
        }),
    ))
}

/// Carries the plan out on the running guest (the profile already points
/// at `new`).
pub fn carry_out(
    layout: &Layout,
    name: &GuestName,
    plan: &Plan,
    running: &Running,
    new: &Path,
) -> Result<()> {
    match plan {
        Plan::Nothing => Ok(()),
        Plan::Switch(toplevel) => {
            let channel = Channel::open(layout, name)?;
            // The new system's paths must be there before it runs.
            super::store_view::extend_for_switch(&running.guest.placement, name, new)?;
            channel.switch_to(toplevel)?;
            booted::record_switch(name, new)?;
            println!("{name}: switched to {} without a reboot", new.display());
            Ok(())
        }
        Plan::Restart => {
            lifecycle::restart(layout, name, &running.guest, StopOptions::default())?;
            println!("{name}: restarted into {}", new.display());
            Ok(())
        }
    }
}

/// Whether the guest came up after the plan: ready, or degraded where it
/// was degraded before too. Why not, if not.
pub fn check(layout: &Layout, name: &GuestName, running: &Running, limit: Duration) -> Result<()> {
    let channel = Channel::open(layout, name)?;
    match (channel.wait_ready(limit)?, &running.was) {
        (Readiness::Ready, _) => Ok(()),
        (Readiness::Degraded, Some(Readiness::Degraded)) => Ok(()),
        (Readiness::Degraded, _) => bail!("it reports degraded, and was running before"),
        (Readiness::NotReady, _) => bail!("it was not ready within {} s", limit.as_secs()),
    }
}

/// Puts the guest back as it was: switched back to what it ran, or
/// restarted into what it booted. The caller has put the profile back.
pub fn roll_back(layout: &Layout, name: &GuestName, plan: &Plan, running: &Running) -> Result<()> {
    match plan {
        Plan::Nothing => Ok(()),
        Plan::Switch(_) => {
            let old = Manifest::load(&running.running)?;
            let toplevel = old
                .toplevel
                .context("the generation it ran names no system to switch back to")?;
            Channel::open(layout, name)?.switch_to(Path::new(toplevel.as_str()))?;
            if running.running == running.booted {
                // Back at what it booted: no switched root.
                booted::record(name, &running.booted)
            } else {
                booted::record_switch(name, &running.running)
            }
        }
        Plan::Restart => {
            // A guest that does not come up may not shut down either.
            let how = StopOptions {
                force: true,
                ..StopOptions::default()
            };
            lifecycle::restart(layout, name, &running.guest, how)
        }
    }
}
