//! What a backend takes of a guest (its type, which kinds of interface,
//! port forwards, volumes as disks or directories), and the one wording in
//! which every backend refuses the rest.

use anyhow::{bail, Result};

use super::{GuestSpec, Kind};
use crate::contract::{GuestType, InterfaceType, Link};

/// How a backend gives a guest its volumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeForm {
    /// A disk image the guest formats nothing on (Miniguest formats it).
    Image,
    /// A host directory bind-mounted into the container.
    Directory,
}

#[derive(Debug)]
pub struct Capabilities {
    pub guest_type: GuestType,
    /// The kinds of interface it attaches.
    pub links: &'static [InterfaceType],
    /// Whether user-mode interfaces may forward host ports.
    pub port_forwards: bool,
    pub volumes: VolumeForm,
    /// Whether commands reach the guest only through its QEMU guest agent
    /// (VMs), rather than through the host's own view of it (containers).
    pub exec_through_agent: bool,
}

impl Capabilities {
    /// Refuses what `kind` cannot give the guest, naming the field.
    pub fn check(&self, kind: Kind, spec: &GuestSpec) -> Result<()> {
        match (self.guest_type, spec.manifest.guest_type) {
            (GuestType::Qemu, GuestType::Lxc) => bail!(
                "guest {} is a container (guestType lxc): it has no kernel to boot; use `miniguest create -t lxc`",
                spec.name
            ),
            (GuestType::Lxc, GuestType::Qemu) => bail!(
                "guest {} is a VM (guestType qemu); build it with boot.miniguest.guestType = \"lxc\" to run it as a container",
                spec.name
            ),
            _ => {}
        }
        for (i, iface) in spec.interfaces.iter().enumerate() {
            let link = iface.link.kind();
            if !self.links.contains(&link) {
                let takes: Vec<&str> = self.links.iter().map(|l| l.as_str()).collect();
                bail!(
                    "interfaces[{i}]: the {kind} backend cannot attach a {} interface; it takes {} (--network {})",
                    link.as_str(),
                    if takes.is_empty() { "none".to_owned() } else { takes.join(", ") },
                    network_choices(self.links)
                );
            }
            if matches!(&iface.link, Link::User(ports) if !ports.is_empty()) && !self.port_forwards
            {
                bail!(
                    "interfaces[{i}].forwardPorts: the {kind} backend forwards no ports; plain QEMU does (`miniguest run`, `create -t qemu`)"
                );
            }
        }
        Ok(())
    }
}

/// The `--network` values that name what a backend takes.
fn network_choices(links: &[InterfaceType]) -> String {
    let mut words = vec!["none"];
    for link in links {
        words.push(match link {
            InterfaceType::User => "user",
            InterfaceType::Bridge => "bridge=BR",
            InterfaceType::Network => "network=NET",
        });
    }
    words.join(", ")
}
