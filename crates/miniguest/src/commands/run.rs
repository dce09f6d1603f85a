use anyhow::{bail, Result};

use crate::backends::{qemu, GuestSpec};
use crate::cli::RunArgs;
use crate::commands::parse_name;
use crate::layout::Layout;

pub fn run(layout: &Layout, args: RunArgs) -> Result<()> {
    let name = parse_name(&args.name)?;
    let spec = GuestSpec::resolve(layout, &name, &args.hypervisor.to_spec_options())?
        .with_network(|| Ok(qemu::default_network()))?;
    let status = qemu::boot(&spec)?;
    if !status.success() {
        bail!("QEMU exited with {status}");
    }
    Ok(())
}
