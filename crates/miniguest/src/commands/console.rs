//! `console`: attach this terminal to a running guest's console, with the
//! hypervisor's own tool.

use std::os::unix::process::CommandExt;

use anyhow::{bail, Result};

use crate::cli::NameArg;
use crate::commands::parse_name;
use crate::guest::Layout;
use crate::service::lifecycle::require_defined;

pub fn run(layout: &Layout, args: NameArg) -> Result<()> {
    let name = parse_name(&args.name)?;
    let guest = require_defined(layout, &name)?;
    let console = guest.backend.console(&name)?;
    eprintln!(
        "connecting to guest {name}'s console ({}); detach with {}",
        console.argv[0], console.detach
    );
    let err = std::process::Command::new(&console.argv[0])
        .args(&console.argv[1..])
        .exec();
    bail!("cannot run {}: {err}", console.argv[0])
}
