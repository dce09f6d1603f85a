//! `start`, `stop` and `restart`: through the backend `create --define`
//! recorded, each under the guest's lock.

use anyhow::Result;

use crate::cli::{RestartArgs, StartArgs, StopArgs};
use crate::commands::parse_name;
use crate::guest::{lock, Layout};
use crate::service::lifecycle::{self, require_defined};

pub fn start(layout: &Layout, args: &StartArgs) -> Result<()> {
    let name = parse_name(&args.name)?;
    let _lock = lock::lock(layout, &name)?;
    let guest = require_defined(layout, &name)?;
    lifecycle::start(layout, &name, &guest)?;
    match args.wait.limit() {
        Some(limit) => lifecycle::wait_ready(layout, &name, limit),
        None => Ok(()),
    }
}

pub fn stop(layout: &Layout, args: &StopArgs) -> Result<()> {
    let name = parse_name(&args.name)?;
    let _lock = lock::lock(layout, &name)?;
    let guest = require_defined(layout, &name)?;
    lifecycle::stop(&name, &guest, args.options())
}

pub fn restart(layout: &Layout, args: &RestartArgs) -> Result<()> {
    let name = parse_name(&args.stop.name)?;
    let _lock = lock::lock(layout, &name)?;
    let restarted = if args.if_needed {
        lifecycle::restart_if_needed(layout, &name, args.stop.options())?
    } else {
        let guest = require_defined(layout, &name)?;
        lifecycle::restart(layout, &name, &guest, args.stop.options())?;
        true
    };
    match args.wait.limit() {
        Some(limit) if restarted => lifecycle::wait_ready(layout, &name, limit),
        _ => Ok(()),
    }
}
