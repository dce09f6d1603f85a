//! `run`: boot a guest in this terminal with plain QEMU.

use anyhow::{bail, Result};

use crate::backend::{qemu, Backend, GuestSpec};
use crate::cli::RunArgs;
use crate::commands::parse_name;
use crate::guest::Layout;

pub fn run(layout: &Layout, args: RunArgs) -> Result<()> {
    let name = parse_name(&args.name)?;
    let spec = GuestSpec::resolve(layout, &name, &args.hypervisor.to_spec_options())?;
    let spec = qemu::Qemu.prepare(&spec)?;
    let status = qemu::boot(&spec)?;
    if !status.success() {
        bail!("QEMU exited with {status}");
    }
    Ok(())
}
