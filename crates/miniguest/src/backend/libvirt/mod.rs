//! libvirt + QEMU: the guest as a domain for direct kernel boot (`domain`),
//! rendered as domain XML (`xml`) or a virt-install command
//! (`virt_install`), and defined, started and watched through libvirt's
//! API by the `miniguest-libvirt` helper (`helper`, `protocol`).

pub mod domain;
pub mod helper;
pub mod protocol;
pub mod virt_install;
pub mod xml;

use std::time::Duration;

use anyhow::{Context, Result};

use super::capabilities::{Capabilities, VolumeForm};
use super::exec::{ExecIo, ExecOutcome, ExecRequest};
use super::{Backend, Change, Console, GuestSpec, Kind, Policy, SiteOptions, State};
use crate::contract::{GuestType, Interface, InterfaceType, Link};
use crate::guest::GuestName;
use domain::Domain;
use protocol::{Action, Answer, Request};

pub const CAPABILITIES: Capabilities = Capabilities {
    guest_type: GuestType::Qemu,
    links: &[
        InterfaceType::User,
        InterfaceType::Bridge,
        InterfaceType::Network,
    ],
    // libvirt's user-mode networking forwards no ports.
    port_forwards: false,
    volumes: VolumeForm::Image,
    exec_through_agent: true,
};

/// A libvirt connection.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Location {
    pub uri: String,
}

impl Location {
    pub fn from_options(options: &SiteOptions) -> Location {
        Location {
            uri: options.libvirt_uri.clone(),
        }
    }
}

pub struct Libvirt {
    at: Location,
    policy: Policy,
}

impl Libvirt {
    pub fn new(at: Location, policy: Policy) -> Libvirt {
        Libvirt { at, policy }
    }

    fn call(&self, request: Request, stdin: Option<&[u8]>) -> Result<Answer> {
        helper::call(&request, stdin)
    }

    fn act(&self, action: Action, name: &GuestName) -> Result<()> {
        self.call(
            Request::Act {
                action,
                uri: self.at.uri.clone(),
                name: name.to_string(),
            },
            None,
        )
        .with_context(|| format!("libvirt could not {action} domain {name}"))
        .map(drop)
    }
}

/// The UUID a new domain gets: derived from the guest's name (a UUID v5),
/// so that the printed XML defines the same domain every time, as
/// NixVirt-style redefinitions at every switch need. libvirt would draw a
/// new one, and refuse a second definition of the name.
pub fn stable_uuid(name: &GuestName) -> String {
    let namespace = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, xml::METADATA_NS.as_bytes());
    uuid::Uuid::new_v5(&namespace, name.as_str().as_bytes()).to_string()
}

/// The domain XML of a prepared spec, with its stable UUID.
pub fn domain_xml(spec: &GuestSpec) -> Result<String> {
    xml::render(&Domain::new(spec, stable_uuid(&spec.name))?)
}

impl Backend for Libvirt {
    fn kind(&self) -> Kind {
        Kind::Libvirt
    }

    fn location(&self) -> super::Location {
        super::Location::Libvirt(self.at.clone())
    }

    /// libvirt's `default` network where it has one, as virt-install would
    /// choose, and user-mode networking where it has none (a host without
    /// libvirt's network setup).
    fn default_network(&self) -> Result<Vec<Interface>> {
        let request = Request::HasNetwork {
            uri: self.at.uri.clone(),
            name: "default".into(),
        };
        let has_default = matches!(self.call(request, None), Ok(Answer::Network(true)));
        let link = if has_default {
            Link::Network("default".parse().expect("a valid network name"))
        } else {
            Link::User(vec![])
        };
        Ok(vec![Interface { link, mac: None }])
    }

    fn definition(&self, spec: &GuestSpec) -> Result<String> {
        domain_xml(spec)
    }

    fn command(&self, spec: &GuestSpec) -> Result<String> {
        let domain = Domain::new(spec, stable_uuid(&spec.name))?;
        let mut text = super::volumes::images_script(spec)?;
        // The copies QEMU's user reads, until the host reboots; a defined
        // guest gets them afresh at each start.
        text.push_str(&super::credentials::staging_script(spec)?);
        match virt_install::argv(&domain, &self.at.uri) {
            Ok(argv) => text.push_str(&format!("{}\n", crate::formats::shell::join(&argv))),
            Err(e) => {
                eprintln!("note: {e}; printing a virsh script instead");
                text.push_str(&virt_install::virsh_script(
                    &xml::render(&domain)?,
                    &domain.name,
                    &self.at.uri,
                ));
            }
        }
        Ok(text)
    }

    /// Defines the domain through libvirt's API, or updates the domain of
    /// that name in place (same UUID; a running domain keeps running and
    /// boots the new definition next time).
    fn define(&self, spec: &GuestSpec) -> Result<Change> {
        let name = spec.name.as_str();
        let existing = match self
            .call(
                Request::Uuid {
                    uri: self.at.uri.clone(),
                    name: name.into(),
                },
                None,
            )
            .with_context(|| format!("could not look up libvirt domain {name}"))?
        {
            Answer::Uuid(uuid) => uuid,
            _ => None,
        };
        let uuid = existing.unwrap_or_else(|| stable_uuid(&spec.name));
        let xml = xml::render(&Domain::new(spec, uuid)?)?;
        super::volumes::create_images(spec)?;
        hook::install()?;
        let answer = self
            .call(
                Request::Define {
                    uri: self.at.uri.clone(),
                    name: name.into(),
                    autostart: self.policy.autostart,
                },
                Some(xml.as_bytes()),
            )
            .with_context(|| format!("could not define the libvirt domain for guest {name}"))?;
        match answer {
            Answer::Defined(change) => Ok(change),
            other => anyhow::bail!("unexpected answer {other:?} from miniguest-libvirt"),
        }
    }

    fn undefine(&self, name: &GuestName) -> Result<()> {
        self.act(Action::Undefine, name)
    }

    fn start(&self, name: &GuestName) -> Result<()> {
        self.act(Action::Start, name)
    }

    fn stop(&self, name: &GuestName, force: bool, timeout: Duration) -> Result<()> {
        if self.state(name)? != State::Running {
            return Ok(());
        }
        let since = std::time::Instant::now();
        let asked = self.act(
            if force {
                Action::Destroy
            } else {
                Action::Shutdown
            },
            name,
        );
        // A guest that powered off between the question and the request
        // has stopped, which is what was asked.
        if let Err(e) = asked {
            if self.state(name)? == State::Running {
                return Err(e);
            }
        }
        super::wait_until_stopped(self, name, since, timeout)
    }

    fn state(&self, name: &GuestName) -> Result<State> {
        Ok(self.states(std::slice::from_ref(name))?.remove(0))
    }

    /// Through libvirt's own channel to the guest agent (the helper runs
    /// the whole exchange); output is captured either way.
    fn exec(&self, name: &GuestName, request: &ExecRequest, io: ExecIo) -> Result<ExecOutcome> {
        let deadline_ms = io.deadline().map(|d| {
            d.saturating_duration_since(std::time::Instant::now())
                .as_millis() as u64
        });
        let answer = self.call(
            Request::Exec {
                uri: self.at.uri.clone(),
                name: name.to_string(),
                deadline_ms,
            },
            Some(&serde_json::to_vec(request)?),
        )?;
        match answer {
            Answer::Exec(outcome) => Ok(outcome),
            other => anyhow::bail!("unexpected answer {other:?} from miniguest-libvirt"),
        }
    }

    fn console(&self, name: &GuestName) -> Result<Console> {
        Ok(Console {
            argv: vec![
                "virsh".into(),
                "-c".into(),
                self.at.uri.clone(),
                "console".into(),
                name.to_string(),
            ],
            detach: "Ctrl+]",
        })
    }

    /// One helper run, one connection for all: `status` asks about many.
    fn states(&self, names: &[GuestName]) -> Result<Vec<State>> {
        if names.is_empty() {
            return Ok(vec![]);
        }
        let request = Request::States {
            uri: self.at.uri.clone(),
            names: names.iter().map(|n| n.to_string()).collect(),
        };
        match self
            .call(request, None)
            .context("libvirt could not tell the domains' states")?
        {
            Answer::States(states) => Ok(states),
            other => anyhow::bail!("unexpected answer {other:?} from miniguest-libvirt"),
        }
    }
}

/// libvirt's QEMU hook, which runs the command a Miniguest domain's
/// metadata names when it starts and stops.
pub mod hook {
    use anyhow::Result;

    pub const SCRIPT: &str = include_str!("qemu-hook.sh");
    pub const PATH: &str = "/etc/libvirt/hooks/qemu.d/miniguest";
    /// Where NixOS's libvirtd (built with --sysconfdir=/var/lib) runs it
    /// from, linked there by its libvirtd-config unit from
    /// `virtualisation.libvirtd.hooks.qemu`.
    pub const NIXOS_PATH: &str = "/var/lib/libvirt/hooks/qemu.d/miniguest";

    /// Installs the hook if it is absent (or an older one of ours). Says
    /// so, since libvirtd only runs hooks it found when it started. On
    /// NixOS the host's configuration declares it (nixosModules.host):
    /// libvirtd-config empties the directory at every start, so nothing is
    /// written there; only its absence is told.
    pub fn install() -> Result<()> {
        if crate::backend::host::is_nixos() {
            if !std::path::Path::new(NIXOS_PATH).exists() {
                eprintln!("warning: {NIXOS_PATH} is missing: on NixOS, import miniguest's nixosModules.host, which declares libvirt's hook (virtualisation.libvirtd.hooks.qemu), then restart libvirtd; until then guests started without `miniguest start` are not kept from garbage collection");
            }
            return Ok(());
        }
        install_at(std::path::Path::new(PATH))
    }

    fn install_at(path: &std::path::Path) -> Result<()> {
        match std::fs::read_to_string(path) {
            Ok(text) if text == SCRIPT => return Ok(()),
            Ok(text) if !text.contains("\n# miniguest: ") => {
                eprintln!("warning: {} is not Miniguest's; guests started without `miniguest start` are not kept from garbage collection", path.display());
                return Ok(());
            }
            _ => {}
        }
        let dir = path.parent().expect("a hook path has a parent");
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!(
                "warning: cannot install libvirt's hook in {}: {e}",
                dir.display()
            );
            return Ok(());
        }
        crate::fs::replace_file_with_mode(path, SCRIPT.as_bytes(), 0o755)?;
        eprintln!("note: installed {}; restart libvirtd once so that it keeps what guests started by `virsh start` or at boot are running from", path.display());
        Ok(())
    }
}
