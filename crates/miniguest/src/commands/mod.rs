//! One module per subcommand; this one dispatches and holds what they share.

mod console;
mod create;
mod exec;
mod generations;
mod install;
mod lifecycle;
mod list;
mod on_host;
mod remove;
mod rollback;
mod run;
mod status;
mod template;
mod upgrade;

use std::io::Write;

use anyhow::{Context, Result};

use crate::cli::{Cli, Command};
use crate::guest::{GuestName, Layout};

pub fn run(cli: Cli) -> Result<()> {
    // What only reads or writes this machine's files ignores the hosts: a
    // hook that a hypervisor runs with the user's MINIGUEST_HOST in its
    // environment is this machine's.
    // So does the host's part of a command another machine carries there.
    let local_only = match &cli.command {
        Command::Hook(_) | Command::Completions(_) | Command::Manpage | Command::Template(_) => {
            true
        }
        Command::Install(install) => install.built.is_some(),
        Command::Upgrade(upgrade) => upgrade.print_origins || !upgrade.built.is_empty(),
        _ => false,
    };
    let hosts = if local_only {
        vec![]
    } else {
        on_host::hosts(&cli)?
    };
    if hosts.iter().any(|h| *h != crate::remote::Target::Local)
        || (cli.build_host.is_some() && !local_only)
    {
        let hosts = if hosts.is_empty() {
            vec![crate::remote::Target::Local]
        } else {
            hosts
        };
        return on_host::run(cli, hosts);
    }
    // Links are made to these paths: relative ones would dangle.
    let layout = Layout {
        guests_dir: absolute(&cli.guests_dir)?,
        profiles_dir: absolute(&cli.profiles_dir)?,
    };
    match cli.command {
        Command::Install(args) => install::run(&layout, args),
        Command::Upgrade(args) => upgrade::run(&layout, args),
        Command::Rollback(args) => rollback::run(&layout, args),
        Command::Generations(args) => generations::run(&layout, args),
        Command::Remove(args) => remove::run(&layout, args),
        Command::Start(args) => lifecycle::start(&layout, &args),
        Command::Exec(args) => exec::run(&layout, args),
        Command::Console(args) => console::run(&layout, args),
        Command::Stop(args) => lifecycle::stop(&layout, &args),
        Command::Restart(args) => lifecycle::restart(&layout, &args),
        Command::Status(args) => status::run(&layout, args),
        Command::Hook(args) => {
            let name = parse_name(&args.name)?;
            crate::service::hook::run(&layout, &name, args.event, args.idmapped_view)
        }
        Command::List(args) => list::run(&layout, args.json),
        Command::Template(args) => template::run(&args.dir),
        Command::Create(args) => create::run(&layout, args),
        Command::Run(args) => run::run(&layout, args),
        Command::Completions(args) => print_bytes(&crate::cli::completions(args.shell)),
        Command::Manpage => print_bytes(&crate::cli::man_page()?),
    }
}

fn absolute(path: &std::path::Path) -> Result<std::path::PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))
}

/// A command that ran to its end and exits with this status (`exec`
/// passing on its guest command's): no error message to print.
#[derive(Debug, thiserror::Error)]
#[error("exit status {0}")]
pub struct ExitStatus(pub i32);

pub(crate) fn parse_name(name: &str) -> Result<GuestName> {
    name.parse().with_context(|| {
        format!(
            "invalid guest name {name:?}: a name is {}",
            crate::guest::name::RULE
        )
    })
}

fn print_bytes(bytes: &[u8]) -> Result<()> {
    std::io::stdout().lock().write_all(bytes)?;
    Ok(())
}

pub(crate) fn print_json(value: &impl serde::Serialize) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// An installed, imperative guest, locked for the duration of a command.
pub(crate) struct LockedGuest<'a> {
    pub name: GuestName,
    pub layout: &'a Layout,
    _lock: crate::guest::lock::GuestLock,
}

impl<'a> LockedGuest<'a> {
    /// Locks the guest and checks that it is installed and ours to change.
    pub fn open(layout: &'a Layout, name: &str) -> Result<Self> {
        let name = parse_name(name)?;
        let lock = crate::guest::lock::lock(layout, &name)?;
        layout.check_owned(&name)?;
        if !crate::nix::profile::Profile::new(&layout.profile(&name)).exists() {
            anyhow::bail!("guest {name} is not installed");
        }
        Ok(LockedGuest {
            name,
            layout,
            _lock: lock,
        })
    }

    pub fn profile_path(&self) -> std::path::PathBuf {
        self.layout.profile(&self.name)
    }
}
