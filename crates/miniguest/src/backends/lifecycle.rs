//! The questions every backend that keeps a definition answers the same
//! way: define, undefine, start, stop, and what state the guest is in.
//! libvirt and LXC implement it; plain QEMU (`run`) and the nspawn command
//! line are foreground processes with nothing to ask.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::idmap::IdMap;
use super::lxc::Container;
use super::nspawn::{Machine, NspawnDirs};
use super::{libvirt, Defined, GuestSpec};
use crate::guest_name::GuestName;
use crate::placement::Location;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Running,
    Stopped,
    Undefined,
}

pub trait Lifecycle {
    /// Defines the guest, or updates its definition in place.
    fn define(&self, spec: &GuestSpec) -> Result<Defined>;
    /// The definition as Miniguest would write it now.
    fn definition(&self, spec: &GuestSpec) -> Result<String>;
    fn undefine(&self, name: &GuestName) -> Result<()>;
    fn start(&self, name: &GuestName) -> Result<()>;
    /// Asks for a clean shutdown (or kills, with `force`) and waits until
    /// the guest has stopped, at most `timeout`.
    fn stop(&self, name: &GuestName, force: bool, timeout: Duration) -> Result<()>;
    fn state(&self, name: &GuestName) -> Result<State>;
    /// The states of many guests, in order (a backend may ask once for all).
    fn states(&self, names: &[GuestName]) -> Result<Vec<State>> {
        names.iter().map(|n| self.state(n)).collect()
    }
}

fn parse_state(word: &str) -> Result<State> {
    match word {
        "running" => Ok(State::Running),
        "stopped" => Ok(State::Stopped),
        "undefined" => Ok(State::Undefined),
        other => bail!("unexpected libvirt state {other:?}"),
    }
}

pub struct Libvirt {
    pub uri: String,
    pub autostart: bool,
}

pub struct Lxc {
    pub lxcpath: PathBuf,
    pub idmap: Option<IdMap>,
    pub autostart: bool,
}

/// The backend a recorded guest lives in.
pub fn for_location(
    location: &Location,
    idmap: Option<IdMap>,
    autostart: bool,
) -> Box<dyn Lifecycle> {
    match location {
        Location::Libvirt { uri } => Box::new(Libvirt {
            uri: uri.clone(),
            autostart,
        }),
        Location::Lxc { lxcpath } => Box::new(Lxc {
            lxcpath: lxcpath.clone(),
            idmap,
            autostart,
        }),
        Location::Nspawn {
            settings_dir,
            machines_dir,
            units_dir,
        } => Box::new(Nspawn {
            dirs: NspawnDirs {
                settings: settings_dir.clone(),
                machines: machines_dir.clone(),
                units: units_dir.clone(),
            },
            idmap,
        }),
    }
}

fn wait_until_stopped(backend: &dyn Lifecycle, name: &GuestName, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    while backend.state(name)? == State::Running {
        if start.elapsed() > timeout {
            bail!(
                "guest {name} did not stop within {}s; use --force to kill it",
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

impl Libvirt {
    fn helper(&self, verb: &str, names: &[&str]) -> Result<String> {
        let mut args = vec![verb, self.uri.as_str()];
        args.extend_from_slice(names);
        libvirt::helper(&args, None)?
            .with_context(|| format!("libvirt could not {verb} domain {}", names.join(", ")))
    }
}

impl Lifecycle for Libvirt {
    fn define(&self, spec: &GuestSpec) -> Result<Defined> {
        let spec = spec.with_network(|| libvirt::default_network(&self.uri))?;
        libvirt::define(&spec, &self.uri, self.autostart)
    }

    fn definition(&self, spec: &GuestSpec) -> Result<String> {
        let spec = spec.with_network(|| libvirt::default_network(&self.uri))?;
        libvirt::domain_xml(&spec)
    }

    fn undefine(&self, name: &GuestName) -> Result<()> {
        self.helper("undefine", &[name.as_str()]).map(drop)
    }

    fn start(&self, name: &GuestName) -> Result<()> {
        self.helper("start", &[name.as_str()]).map(drop)
    }

    fn stop(&self, name: &GuestName, force: bool, timeout: Duration) -> Result<()> {
        if self.state(name)? != State::Running {
            return Ok(());
        }
        self.helper(if force { "destroy" } else { "shutdown" }, &[name.as_str()])?;
        wait_until_stopped(self, name, timeout)
    }

    fn state(&self, name: &GuestName) -> Result<State> {
        Ok(self.states(std::slice::from_ref(name))?.remove(0))
    }

    fn states(&self, names: &[GuestName]) -> Result<Vec<State>> {
        if names.is_empty() {
            return Ok(vec![]);
        }
        let names: Vec<&str> = names.iter().map(GuestName::as_str).collect();
        let states = self
            .helper("states", &names)?
            .lines()
            .map(parse_state)
            .collect::<Result<Vec<_>>>()?;
        if states.len() != names.len() {
            bail!(
                "libvirt reported {} states for {} domains",
                states.len(),
                names.len()
            );
        }
        Ok(states)
    }
}

impl Lxc {
    fn container<'a>(&self, spec: &'a GuestSpec) -> Container<'a> {
        Container {
            spec,
            lxcpath: self.lxcpath.clone(),
            idmap: self.idmap,
            autostart: self.autostart,
        }
    }

    fn run(&self, tool: &str, name: &GuestName, extra: &[&str]) -> Result<std::process::Output> {
        Command::new(tool)
            .arg("-P")
            .arg(&self.lxcpath)
            .args(["-n", name.as_str()])
            .args(extra)
            .stdin(std::process::Stdio::null())
            .output()
            .with_context(|| format!("cannot run {tool}"))
    }

    fn checked(&self, tool: &str, name: &GuestName, extra: &[&str]) -> Result<()> {
        let out = self.run(tool, name, extra)?;
        if !out.status.success() {
            bail!(
                "{tool} failed for container {name}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

impl Lifecycle for Lxc {
    fn define(&self, spec: &GuestSpec) -> Result<Defined> {
        self.container(spec).define()
    }

    fn definition(&self, spec: &GuestSpec) -> Result<String> {
        self.container(spec).config()
    }

    fn undefine(&self, name: &GuestName) -> Result<()> {
        self.checked("lxc-destroy", name, &[])
    }

    fn start(&self, name: &GuestName) -> Result<()> {
        self.checked("lxc-start", name, &[])
    }

    fn stop(&self, name: &GuestName, force: bool, timeout: Duration) -> Result<()> {
        if self.state(name)? != State::Running {
            return Ok(());
        }
        let secs = timeout.as_secs().max(1).to_string();
        let args: Vec<&str> = if force {
            vec!["-k"]
        } else {
            vec!["-t", &secs, "--nokill"]
        };
        // lxc-stop waits itself; its verdict is read from the state.
        let _ = self.run("lxc-stop", name, &args)?;
        wait_until_stopped(self, name, Duration::from_secs(1))
    }

    /// One `lxc-ls` for all: `status` asks about many containers.
    fn states(&self, names: &[GuestName]) -> Result<Vec<State>> {
        let out = Command::new("lxc-ls")
            .arg("-P")
            .arg(&self.lxcpath)
            .args(["--running", "-1"])
            .stdin(std::process::Stdio::null())
            .output()
            .context("cannot run lxc-ls")?;
        if !out.status.success() {
            return names.iter().map(|n| self.state(n)).collect();
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let running: std::collections::HashSet<&str> = text.lines().map(str::trim).collect();
        Ok(names
            .iter()
            .map(|name| {
                if !self.lxcpath.join(name.as_str()).join("config").exists() {
                    State::Undefined
                } else if running.contains(name.as_str()) {
                    State::Running
                } else {
                    State::Stopped
                }
            })
            .collect())
    }

    fn state(&self, name: &GuestName) -> Result<State> {
        if !self.lxcpath.join(name.as_str()).join("config").exists() {
            return Ok(State::Undefined);
        }
        let out = self.run("lxc-info", name, &["-s"])?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(
            if text.contains("RUNNING") || text.contains("STOPPING") || text.contains("STARTING") {
                State::Running
            } else {
                State::Stopped
            },
        )
    }
}

/// A machine `machinectl start` runs (systemd-nspawn@NAME.service).
pub struct Nspawn {
    pub dirs: NspawnDirs,
    pub idmap: Option<IdMap>,
}

impl Nspawn {
    fn machinectl(&self, verb: &str, name: &GuestName) -> Result<std::process::Output> {
        Command::new("machinectl")
            .args([verb, name.as_str()])
            .stdin(std::process::Stdio::null())
            .output()
            .context("cannot run machinectl")
    }

    fn checked(&self, verb: &str, name: &GuestName) -> Result<()> {
        let out = self.machinectl(verb, name)?;
        if !out.status.success() {
            bail!(
                "machinectl {verb} {name} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

impl Lifecycle for Nspawn {
    fn define(&self, spec: &GuestSpec) -> Result<Defined> {
        Machine {
            spec,
            idmap: self.idmap,
        }
        .define(&self.dirs)
    }

    fn definition(&self, spec: &GuestSpec) -> Result<String> {
        Machine {
            spec,
            idmap: self.idmap,
        }
        .settings()
    }

    fn undefine(&self, name: &GuestName) -> Result<()> {
        let name = name.as_str();
        crate::layout::remove_if_exists(&self.dirs.settings_file(name))?;
        crate::layout::remove_if_exists(&self.dirs.image(name))?;
        let drop_in = self.dirs.drop_in_dir(name);
        crate::layout::remove_if_exists(&drop_in.join("miniguest.conf"))?;
        let _ = std::fs::remove_dir(&drop_in);
        Ok(())
    }

    fn start(&self, name: &GuestName) -> Result<()> {
        self.checked("start", name)
    }

    fn stop(&self, name: &GuestName, force: bool, timeout: Duration) -> Result<()> {
        if self.state(name)? != State::Running {
            return Ok(());
        }
        self.checked(if force { "terminate" } else { "poweroff" }, name)?;
        wait_until_stopped(self, name, timeout)
    }

    fn state(&self, name: &GuestName) -> Result<State> {
        if !self.dirs.settings_file(name.as_str()).exists() {
            return Ok(State::Undefined);
        }
        // machined knows only running machines.
        let known = Command::new("machinectl")
            .args(["show", name.as_str()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        Ok(if known {
            State::Running
        } else {
            State::Stopped
        })
    }
}
