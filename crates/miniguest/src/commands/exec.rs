//! `exec`: run a command in a running guest, through its backend's
//! channel; the command's output and exit status are this one's.

use std::io::{IsTerminal, Read, Write};
use std::time::Duration;

use anyhow::Result;

use crate::backend::exec::{ExecIo, ExecRequest};
use crate::cli::ExecArgs;
use crate::commands::{parse_name, ExitStatus};
use crate::guest::Layout;
use crate::service::exec::Channel;

pub fn run(layout: &Layout, args: ExecArgs) -> Result<()> {
    let name = parse_name(&args.name)?;
    let channel = Channel::open(layout, &name)?;
    let through_agent = channel.backend.kind().capabilities().exec_through_agent;
    let mut request = ExecRequest::new(args.command);
    let io = match args.timeout {
        Some(secs) => ExecIo::capture_for(Duration::from_secs(secs)),
        None if through_agent => ExecIo::Capture { deadline: None },
        None => ExecIo::Inherit,
    };
    // The agent takes standard input whole, with the command.
    if io != ExecIo::Inherit && !std::io::stdin().is_terminal() {
        std::io::stdin().read_to_end(&mut request.input)?;
    }
    let outcome = channel.exec(&request, io)?;
    std::io::stderr().write_all(&outcome.stderr)?;
    std::io::stdout().write_all(&outcome.stdout)?;
    std::io::stdout().flush()?;
    if outcome.status != 0 {
        return Err(ExitStatus(outcome.status).into());
    }
    Ok(())
}
