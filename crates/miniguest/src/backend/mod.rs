//! Hypervisor backends. Each backend turns a guest (`GuestSpec`) into one
//! model of what its hypervisor runs (a libvirt domain, a QEMU invocation,
//! an LXC config, an nspawn machine) and renders that model to each of its
//! formats; those that keep a definition also define, start, stop and
//! report on guests. None of them copies anything into a guest: the host's
//! store and the guest's `boot/` are shared read-only.
//!
//! Everything one backend knows lives in its module (`libvirt/`, `qemu/`,
//! `lxc.rs`, `nspawn.rs`). This module lists them once (`Kind`, `Location`),
//! says what they have in common (`Backend`) and opens one.

pub mod agent;
pub mod capabilities;
pub mod container;
pub mod credentials;
pub mod exec;
pub mod exposure;
pub mod host;
pub mod libvirt;
pub mod lxc;
pub mod mounts;
pub mod network;
pub mod nspawn;
pub mod qemu;
pub mod spec;
pub mod store_view;
pub mod volumes;

use std::time::Duration;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

pub use capabilities::Capabilities;
pub use spec::{GuestSpec, SpecOptions, VirtType};

use crate::contract::{GuestType, Interface};
use crate::guest::GuestName;
use exec::{ExecIo, ExecOutcome, ExecRequest};

/// Every backend, listed once: the CLI's `-t`, the placement record and
/// the host module's `backend` option (whose list `nix/lib/contract.nix`
/// holds, checked against `Kind::DEFINABLE` by the contract tests) all
/// come from here.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    clap::ValueEnum,
    Serialize,
    Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// libvirt with QEMU (virt-install command, or defined through the libvirt API)
    Libvirt,
    /// A plain qemu-system command line
    Qemu,
    /// An LXC container
    Lxc,
    /// A systemd-nspawn command line, or a machine for machinectl
    Nspawn,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Libvirt, Kind::Qemu, Kind::Lxc, Kind::Nspawn];

    /// The backends that keep a definition, so that a guest can be defined
    /// in them (`create --define`, the host module's `backend`).
    pub const DEFINABLE: [Kind; 3] = [Kind::Libvirt, Kind::Lxc, Kind::Nspawn];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Libvirt => "libvirt",
            Kind::Qemu => "qemu",
            Kind::Lxc => "lxc",
            Kind::Nspawn => "nspawn",
        }
    }

    /// What the backend takes of a guest.
    pub fn capabilities(self) -> &'static Capabilities {
        match self {
            Kind::Libvirt => &libvirt::CAPABILITIES,
            Kind::Qemu => &qemu::CAPABILITIES,
            Kind::Lxc => &lxc::CAPABILITIES,
            Kind::Nspawn => &nspawn::CAPABILITIES,
        }
    }

    /// What `create --define` says it defined.
    pub fn object(self) -> &'static str {
        match self {
            Kind::Libvirt => "libvirt domain",
            Kind::Qemu => "QEMU guest",
            Kind::Lxc => "LXC container",
            Kind::Nspawn => "nspawn machine",
        }
    }

    /// Whether its definition runs Miniguest's hook at every start (LXC's
    /// config, nspawn's drop-in). libvirt runs its hook only if libvirtd
    /// found it when it started, so `start` does the hook's work itself.
    pub fn always_runs_the_hook(self) -> bool {
        matches!(self, Kind::Lxc | Kind::Nspawn)
    }

    /// The backend a guest of that type gets when none is named.
    pub fn default_for(guest_type: GuestType) -> Kind {
        match guest_type {
            GuestType::Qemu => Kind::Libvirt,
            GuestType::Lxc => Kind::Lxc,
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a backend keeps its guests (or, for plain QEMU, that it keeps
/// none): recorded with a defined guest, so that later commands act where
/// it lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase")]
pub enum Location {
    Libvirt(libvirt::Location),
    Qemu,
    Lxc(lxc::Location),
    Nspawn(nspawn::Location),
}

impl Location {
    pub fn kind(&self) -> Kind {
        match self {
            Location::Libvirt(_) => Kind::Libvirt,
            Location::Qemu => Kind::Qemu,
            Location::Lxc(_) => Kind::Lxc,
            Location::Nspawn(_) => Kind::Nspawn,
        }
    }

    /// The location of that kind the options name.
    pub fn of(kind: Kind, options: &SiteOptions) -> Location {
        match kind {
            Kind::Libvirt => Location::Libvirt(libvirt::Location::from_options(options)),
            Kind::Qemu => Location::Qemu,
            Kind::Lxc => Location::Lxc(lxc::Location::from_options(options)),
            Kind::Nspawn => Location::Nspawn(nspawn::Location::from_options(options)),
        }
    }
}

/// Where each backend keeps its guests, as the user chose (plain values,
/// filled from the command line or the environment).
#[derive(Debug, Clone, Default)]
pub struct SiteOptions {
    pub libvirt_uri: String,
    /// None: `lxc-config lxc.lxcpath`.
    pub lxcpath: Option<std::path::PathBuf>,
    pub nspawn: nspawn::Location,
}

/// The host's policy for a guest, beyond its location.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// Start the guest when the host boots.
    pub autostart: bool,
    /// Run a container's root as the host's root (never outside a test rig).
    pub unsafe_unmapped_root: bool,
}

/// Opens the backend at `location`. Backends that need an id map for a
/// container's root find it here, from the host's subordinate ranges,
/// unless the policy says to run unmapped.
pub fn open(location: &Location, policy: Policy) -> Result<Box<dyn Backend>> {
    Ok(match location {
        Location::Libvirt(at) => Box::new(libvirt::Libvirt::new(at.clone(), policy)),
        Location::Qemu => Box::new(qemu::Qemu),
        Location::Lxc(at) => Box::new(lxc::Lxc::new(at.clone(), policy)?),
        Location::Nspawn(at) => Box::new(nspawn::Nspawn::new(at.clone(), policy)?),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Running,
    Stopped,
    Undefined,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Stopped => "stopped",
            State::Undefined => "undefined",
        }
    }
}

impl std::str::FromStr for State {
    type Err = String;

    fn from_str(word: &str) -> Result<Self, String> {
        match word {
            "running" => Ok(State::Running),
            "stopped" => Ok(State::Stopped),
            "undefined" => Ok(State::Undefined),
            other => Err(format!("unexpected state {other:?}")),
        }
    }
}

/// What defining a guest did to the hypervisor's definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Defined,
    Updated,
    Unchanged,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Defined => "defined",
            Change::Updated => "updated",
            Change::Unchanged => "unchanged",
        }
    }
}

impl std::str::FromStr for Change {
    type Err = String;

    fn from_str(word: &str) -> Result<Self, String> {
        match word {
            "defined" => Ok(Change::Defined),
            "updated" => Ok(Change::Updated),
            "unchanged" => Ok(Change::Unchanged),
            other => Err(format!("unexpected answer {other:?}")),
        }
    }
}

/// The one wording of "this backend cannot do that".
pub fn unsupported(kind: Kind, what: &str) -> anyhow::Error {
    anyhow::anyhow!("the {kind} backend {what}")
}

/// What every backend answers. The defaults say the backend cannot: plain
/// QEMU and the nspawn command line keep no definition, and not every
/// hypervisor has every channel.
pub trait Backend {
    fn kind(&self) -> Kind;

    /// Where it keeps its guests, for the placement record.
    fn location(&self) -> Location;

    /// The network a guest that asks for none in particular gets.
    fn default_network(&self) -> Result<Vec<Interface>> {
        Ok(vec![])
    }

    /// The guest as this backend takes it: the default network filled in
    /// and everything it cannot give refused, in one wording. Every other
    /// method takes a spec prepared so.
    fn prepare(&self, spec: &GuestSpec) -> Result<GuestSpec> {
        let spec = spec.with_network(|| self.default_network())?;
        self.kind().capabilities().check(self.kind(), &spec)?;
        Ok(spec)
    }

    /// Warnings about how the guest will run here, for `create` to print.
    fn caveats(&self, _spec: &GuestSpec) -> Result<Vec<String>> {
        Ok(vec![])
    }

    /// The configuration itself (domain XML, LXC config, `.nspawn`
    /// settings): what `create --config` prints and what `status` compares
    /// with what was defined.
    fn definition(&self, _spec: &GuestSpec) -> Result<String> {
        Err(unsupported(
            self.kind(),
            "keeps no configuration: run the printed command, or `miniguest run`",
        ))
    }

    /// A shell script that creates (and starts) the guest with the
    /// hypervisor's own tools.
    fn command(&self, spec: &GuestSpec) -> Result<String>;

    /// Defines the guest, or updates its definition in place.
    fn define(&self, _spec: &GuestSpec) -> Result<Change> {
        Err(unsupported(
            self.kind(),
            "keeps no definition: run the printed command, or `miniguest run`",
        ))
    }

    fn undefine(&self, _name: &GuestName) -> Result<()> {
        Err(unsupported(self.kind(), "keeps no definition"))
    }

    fn start(&self, _name: &GuestName) -> Result<()> {
        Err(unsupported(
            self.kind(),
            "does not start guests it keeps no definition of",
        ))
    }

    /// Asks for a clean shutdown (or kills, with `force`) and waits until
    /// the guest has stopped, at most `timeout`.
    fn stop(&self, _name: &GuestName, _force: bool, _timeout: Duration) -> Result<()> {
        Err(unsupported(
            self.kind(),
            "does not stop guests it keeps no definition of",
        ))
    }

    fn state(&self, _name: &GuestName) -> Result<State> {
        Ok(State::Undefined)
    }

    /// The states of many guests, in order (a backend may ask once for all).
    fn states(&self, names: &[GuestName]) -> Result<Vec<State>> {
        names.iter().map(|n| self.state(n)).collect()
    }

    /// Runs a command in the running guest, through the hypervisor's own
    /// channel into it.
    fn exec(&self, _name: &GuestName, _request: &ExecRequest, _io: ExecIo) -> Result<ExecOutcome> {
        Err(unsupported(self.kind(), "has no channel into its guests"))
    }

    /// The command that attaches this terminal to the guest's console.
    fn console(&self, _name: &GuestName) -> Result<Console> {
        Err(unsupported(self.kind(), "has no console to attach to"))
    }
}

/// A console to attach to: the hypervisor's own command, and how to leave
/// it.
pub struct Console {
    pub argv: Vec<String>,
    pub detach: &'static str,
}

/// Polls until the guest has stopped: until `timeout` after `since`, the
/// moment the stop was asked for, and at least a second more from now (a
/// hypervisor's own wait may have used the whole timeout). The error
/// names the whole wait.
pub(crate) fn wait_until_stopped(
    backend: &dyn Backend,
    name: &GuestName,
    since: std::time::Instant,
    timeout: Duration,
) -> Result<()> {
    let deadline = (since + timeout).max(std::time::Instant::now() + Duration::from_secs(1));
    while backend.state(name)? == State::Running {
        if std::time::Instant::now() > deadline {
            bail!(
                "guest {name} did not stop within {}s; use --force to kill it",
                since.elapsed().as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
