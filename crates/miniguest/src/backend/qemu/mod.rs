//! Plain QEMU: the guest as one invocation (`invocation`), printed as a
//! script or booted in the foreground by `miniguest run`, with virtiofsd
//! daemons alongside when the store is shared over virtiofs (`virtiofsd`).
//! It keeps no definition: there is nothing to define, start or stop.

pub mod invocation;
pub mod virtiofsd;

use std::path::Path;
use std::process::{Child, Command};

use anyhow::{bail, Context, Result};

use super::agent::SocketAgent;
use super::capabilities::{Capabilities, VolumeForm};
use super::exec::{ExecIo, ExecOutcome, ExecRequest};
use super::{Backend, GuestSpec, Kind};
use crate::contract::{GuestType, Interface, InterfaceType};
use crate::formats::shell::{join, quote};
use crate::guest::GuestName;
use invocation::invocation;
use std::time::Duration;

pub const CAPABILITIES: Capabilities = Capabilities {
    guest_type: GuestType::Qemu,
    links: &[InterfaceType::User, InterfaceType::Bridge],
    port_forwards: true,
    volumes: VolumeForm::Image,
    exec_through_agent: true,
};

pub struct Qemu;

impl Backend for Qemu {
    fn kind(&self) -> Kind {
        Kind::Qemu
    }

    fn location(&self) -> super::Location {
        super::Location::Qemu
    }

    /// User-mode networking: works without any host setup.
    fn default_network(&self) -> Result<Vec<Interface>> {
        Ok(super::network::user_mode())
    }

    /// The volumes' set-up, then the guest (`script`).
    fn command(&self, spec: &GuestSpec) -> Result<String> {
        let mut out = super::volumes::images_script(spec)?;
        if spec.manifest.agent {
            let dir = invocation::agent_socket(&spec.name);
            let dir = dir.parent().expect("a socket in a directory");
            out.push_str(&format!(
                "mkdir -p {}\n",
                quote(super::host::path_str(dir)?)
            ));
        }
        out.push_str(&script(spec)?);
        Ok(out)
    }

    /// The guest agent, on the socket `run` (or the printed command) gave
    /// QEMU.
    fn exec(&self, name: &GuestName, request: &ExecRequest, io: ExecIo) -> Result<ExecOutcome> {
        let socket = invocation::agent_socket(name);
        if !socket.exists() {
            bail!(
                "guest {name} is not running under `miniguest run` (no agent socket {})",
                socket.display()
            );
        }
        let mut agent = SocketAgent::connect(&socket, Duration::from_secs(5))?;
        super::agent::exec(&mut agent, request, io.deadline())
    }
}

/// The guest as a shell script. With virtiofs, the daemons run in the
/// background from a private directory of the script's own (their sockets
/// live there), which is removed when QEMU exits.
pub fn script(spec: &GuestSpec) -> Result<String> {
    let inv = invocation(spec, Path::new("."))?;
    if inv.daemons.is_empty() {
        return Ok(format!("{}\n", join(&inv.qemu)));
    }
    let mut out = String::from("(\n");
    out.push_str("dir=$(mktemp -d) && cd \"$dir\" || exit 1\n");
    out.push_str("trap 'kill $(jobs -p) 2>/dev/null; cd /; rm -rf \"$dir\"' EXIT\n");
    for daemon in &inv.daemons {
        out.push_str(&join(&daemon.argv));
        out.push_str(" &\n");
    }
    // QEMU must not start before the sockets exist.
    let sockets: Vec<String> = inv
        .daemons
        .iter()
        .map(|d| Ok(quote(super::host::path_str(&d.socket)?).into_owned()))
        .collect::<Result<_>>()?;
    out.push_str(&format!(
        "for s in {}; do while [ ! -S \"$s\" ]; do sleep 0.1; done; done\n",
        sockets.join(" ")
    ));
    out.push_str(&join(&inv.qemu));
    out.push_str("\n)\n");
    Ok(out)
}

/// Boots a prepared spec in the foreground and returns QEMU's exit status.
pub fn boot(spec: &GuestSpec) -> Result<std::process::ExitStatus> {
    super::volumes::create_images(spec)?;
    if spec.store_view == super::store_view::StoreView::Closure {
        super::store_view::build_in_own_namespace(spec)?;
    }
    if spec.manifest.agent {
        let socket = invocation::agent_socket(&spec.name);
        let dir = socket.parent().expect("a socket in a directory");
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let _ = std::fs::remove_file(&socket);
    }
    let socket_dir = tempfile::Builder::new().prefix("miniguest-run").tempdir()?;
    let inv = invocation(spec, socket_dir.path())?;
    let mut daemons: Vec<Child> = Vec::new();
    let result = (|| {
        for daemon in &inv.daemons {
            daemons.push(
                Command::new(&daemon.argv[0])
                    .args(&daemon.argv[1..])
                    .dies_with_parent(rustix::process::Signal::KILL)
                    // QEMU's virtiofsd logs every connection at its lowest level.
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .with_context(|| format!("cannot start {}", daemon.argv[0]))?,
            );
        }
        for daemon in &inv.daemons {
            wait_for_socket(&daemon.socket)?;
        }
        // QEMU quits cleanly on SIGTERM.
        Command::new(&inv.qemu[0])
            .args(&inv.qemu[1..])
            .dies_with_parent(rustix::process::Signal::TERM)
            .status()
            .with_context(|| format!("cannot start {}", inv.qemu[0]))
    })();
    for mut child in daemons {
        let _ = child.kill();
        let _ = child.wait();
    }
    result
}

/// A foreground guest lives no longer than the `run` that started it: if
/// `run` is killed, the kernel signals its children, and they do not
/// linger holding the terminal and the shares.
trait DiesWithParent {
    fn dies_with_parent(&mut self, signal: rustix::process::Signal) -> &mut Self;
}

impl DiesWithParent for Command {
    fn dies_with_parent(&mut self, signal: rustix::process::Signal) -> &mut Self {
        use std::os::unix::process::CommandExt;
        let parent = std::process::id();
        // SAFETY: the closure makes only async-signal-safe calls (prctl,
        // getppid) between fork and exec.
        unsafe {
            self.pre_exec(move || {
                rustix::process::set_parent_process_death_signal(Some(signal))?;
                // The parent may have died before the signal was armed.
                if rustix::process::getppid().map(|p| p.as_raw_nonzero().get() as u32)
                    != Some(parent)
                {
                    return Err(std::io::Error::other("run exited before its guest started"));
                }
                Ok(())
            })
        }
    }
}

fn wait_for_socket(path: &Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    for _ in 0..200 {
        if path.metadata().is_ok_and(|m| m.file_type().is_socket()) {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    bail!("virtiofsd did not create {}", path.display())
}
