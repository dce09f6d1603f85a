//! The libvirt domain of a guest, as one model: every value resolved from
//! the spec once, then rendered as domain XML (`xml`) or as a virt-install
//! command line (`virt_install`).

use anyhow::{bail, Context, Result};

use crate::backend::host::path_str;
use crate::backend::{GuestSpec, VirtType};
use crate::contract::{Link, ShareFs, Volume};

pub struct Domain {
    pub name: String,
    pub uuid: String,
    pub virt_type: &'static str,
    pub arch: &'static str,
    pub machine: String,
    pub memory_mib: u64,
    pub vcpus: u32,
    /// Shared, memfd-backed memory, which virtiofs needs.
    pub shared_memory: bool,
    /// The firmware that boots the kernel (qboot), or libvirt's default.
    pub loader: Option<String>,
    pub kernel: String,
    pub initrd: String,
    pub cmdline: String,
    /// The command libvirt's QEMU hook runs as the domain starts and stops.
    pub hook: Option<String>,
    pub disks: Vec<Disk>,
    pub filesystems: Vec<Filesystem>,
    pub interfaces: Vec<Nic>,
    pub console: Console,
    /// A virtio-serial channel for the QEMU guest agent, which libvirt
    /// talks to itself.
    pub agent_channel: bool,
    /// fw_cfg files (name, host file): the guest's systemd credentials,
    /// from the copies staged for QEMU's user as the domain starts.
    pub fw_cfg: Vec<(String, String)>,
}

pub struct Disk {
    pub image: String,
    pub dev: String,
    pub serial: String,
}

pub struct Filesystem {
    pub source: String,
    pub tag: String,
    pub read_only: bool,
    pub driver: ShareFs,
    /// For virtiofs: what libvirt runs in place of its own virtiofsd.
    pub binary: Option<String>,
}

pub struct Nic {
    /// `user`, `bridge` or `network`.
    pub kind: &'static str,
    /// The bridge or network it attaches to.
    pub source: Option<String>,
    pub mac: String,
}

/// The serial console: a pty (`virsh console`), logged to a file when asked.
pub enum Console {
    Pty,
    PtyLogged(String),
}

/// The osinfo-db name for NixOS guests.
pub const OS_VARIANT: &str = "nixos-unstable";

/// The machine type, pinned so that the XML and the virt-install command
/// give the same one (virt-install would pick q35 on x86_64): pc, which
/// boots the stand-in faster than q35 under libvirt here (with qboot
/// rather than SeaBIOS, faster still); libvirt 9.0 has no microvm ("No
/// PCI buses available"). See the README's boot shape.
fn default_machine() -> &'static str {
    crate::backend::qemu::invocation::default_machine(VirtType::Qemu)
}

impl Domain {
    /// The domain of a prepared spec (see `Backend::prepare`), with this
    /// UUID.
    pub fn new(spec: &GuestSpec, uuid: String) -> Result<Domain> {
        if spec.default_network {
            bail!(
                "internal error: libvirt's default network was not chosen for guest {}",
                spec.name
            );
        }
        let driver = spec.manifest.store_fs;
        let filesystems = spec
            .mounts()?
            .into_iter()
            .map(|m| {
                // libvirt starts this binary in place of its own
                // virtiofsd: for read-only shares, one that refuses
                // writes; for writable ones the host's, which libvirt's
                // own search misses where QEMU ships none.
                let binary = if driver == ShareFs::Virtiofs {
                    let program = crate::backend::qemu::virtiofsd::for_mount(spec, &m)?;
                    Some(path_str(&program)?.to_owned())
                } else {
                    None
                };
                Ok(Filesystem {
                    source: m.source,
                    tag: m.tag,
                    read_only: m.read_only,
                    driver,
                    binary,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let disks = spec
            .manifest
            .volumes
            .iter()
            .enumerate()
            .map(|(i, v)| disk(spec, i, v))
            .collect::<Result<Vec<_>>>()?;
        let interfaces = spec
            .interfaces
            .iter()
            .enumerate()
            .map(|(i, iface)| {
                let (kind, source) = match &iface.link {
                    Link::User(_) => ("user", None),
                    Link::Bridge(br) => ("bridge", Some(br.to_string())),
                    Link::Network(net) => ("network", Some(net.to_string())),
                };
                Nic {
                    kind,
                    source,
                    mac: iface
                        .mac
                        .as_ref()
                        .map_or_else(|| derived_mac(spec, i), |m| m.to_string()),
                }
            })
            .collect();
        Ok(Domain {
            name: spec.name.to_string(),
            uuid,
            virt_type: match spec.virt_type {
                VirtType::Kvm => "kvm",
                VirtType::Qemu => "qemu",
            },
            arch: std::env::consts::ARCH,
            machine: spec
                .machine
                .clone()
                .unwrap_or_else(|| default_machine().to_owned()),
            memory_mib: spec.memory_mib,
            vcpus: spec.vcpus,
            shared_memory: driver == ShareFs::Virtiofs,
            // qboot on the pc machine; others keep their own firmware.
            loader: match (
                &spec.qboot,
                spec.machine.is_none() && default_machine() == "pc",
            ) {
                (Some(qboot), true) => Some(path_str(qboot)?.to_owned()),
                _ => None,
            },
            kernel: path_str(&spec.kernel())?.to_owned(),
            initrd: path_str(&spec.initrd())?.to_owned(),
            cmdline: spec.cmdline(),
            hook: spec.hook.clone(),
            disks,
            filesystems,
            interfaces,
            console: match &spec.console_log {
                Some(log) => Console::PtyLogged(path_str(log)?.to_owned()),
                None => Console::Pty,
            },
            agent_channel: spec.manifest.agent,
            fw_cfg: spec
                .credentials
                .iter()
                .map(|c| {
                    let staged = crate::backend::credentials::staged_path(&spec.name, c);
                    Ok((c.fw_cfg_name(), path_str(&staged)?.to_owned()))
                })
                .collect::<Result<_>>()?,
        })
    }
}

fn disk(spec: &GuestSpec, index: usize, volume: &Volume) -> Result<Disk> {
    // Volumes are few; past 26 libvirt would want vdaa, which nobody
    // declares.
    let letter = (b'a' + (index % 26) as u8) as char;
    Ok(Disk {
        image: path_str(&spec.volume_image(volume))
            .context("volume image")?
            .to_owned(),
        dev: format!("vd{letter}"),
        serial: volume.name.to_string(),
    })
}

/// The MAC address of an interface that declares none: derived from the
/// guest's name and the interface's place. libvirt would draw a new one at
/// every define, so defining again would never leave the domain
/// `unchanged`, and the guest's address would change.
fn derived_mac(spec: &GuestSpec, index: usize) -> String {
    // FNV-1a: stable across hosts and releases, unlike std's hasher.
    let mut hash: u32 = 0x811c_9dc5;
    for b in spec.name.as_str().bytes().chain([0, index as u8]) {
        hash = (hash ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    let [_, a, b, c] = hash.to_be_bytes();
    // 52:54:00 is QEMU's own prefix, locally administered.
    format!("52:54:00:{a:02x}:{b:02x}:{c:02x}")
}
