//! The guest as one QEMU invocation: the `qemu-system-*` argv and the
//! virtiofsd daemons it connects to, from which both the printed script
//! and `miniguest run` start it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use super::virtiofsd;
use crate::backend::host::path_str;
use crate::backend::{GuestSpec, VirtType};
use crate::contract::{Link, ShareFs};

/// QEMU's option syntax: a comma inside a value is written twice.
fn qv(value: &str) -> String {
    value.replace(',', ",,")
}

pub fn qemu_binary() -> String {
    let arch = match std::env::consts::ARCH {
        "x86" => "i386",
        arch => arch,
    };
    format!("qemu-system-{arch}")
}

/// The machine that boots a guest fastest and every time, with every
/// device the guest uses. On x86_64 with KVM, QEMU's microvm (no legacy PC
/// chipset or firmware; PCIe for the virtio devices; ACPI so that a
/// powered-off guest ends QEMU): its guest keeps time by kvmclock. Under
/// TCG there is no kvmclock, and microvm has no HPET or ACPI PM timer to
/// fall back on: on a busy host the kernel's PIT calibration of the TSC
/// fails and the boot hangs (5 of 12 boots, three guests on two cores),
/// so TCG gets `pc` with qboot, as libvirt does, which measured as fast
/// (see the README's boot shape). Elsewhere `virt`.
pub fn default_machine(virt_type: VirtType) -> &'static str {
    match (std::env::consts::ARCH, virt_type) {
        ("x86_64", VirtType::Kvm) => "microvm,acpi=on,pcie=on,rtc=on,usb=off",
        ("x86_64" | "x86", _) => "pc",
        _ => "virt",
    }
}

/// Where plain QEMU offers a guest's agent: one directory per guest name,
/// so that `miniguest exec NAME` finds it.
pub fn agent_socket(name: &crate::guest::GuestName) -> PathBuf {
    PathBuf::from("/run/miniguest/qemu")
        .join(name.as_str())
        .join("agent.sock")
}

/// A virtiofsd daemon QEMU connects to, one per shared directory.
pub struct VirtiofsDaemon {
    pub socket: PathBuf,
    pub argv: Vec<String>,
}

pub struct Invocation {
    pub daemons: Vec<VirtiofsDaemon>,
    pub qemu: Vec<String>,
}

/// The daemons and QEMU for a prepared spec; virtiofsd sockets go in
/// `socket_dir`, which may be relative (the printed script runs in a
/// directory of its own).
pub fn invocation(spec: &GuestSpec, socket_dir: &Path) -> Result<Invocation> {
    let (accel, cpu) = match spec.virt_type {
        VirtType::Kvm => ("kvm", Some("host")),
        // QEMU's default model: under TCG every feature `max` adds is
        // emulated, and the boot is slower for it.
        VirtType::Qemu => ("tcg", None),
    };
    let machine = spec
        .machine
        .clone()
        .unwrap_or_else(|| default_machine(spec.virt_type).to_owned());
    let mut q: Vec<String> = vec![
        qemu_binary(),
        "-name".into(),
        qv(spec.name.as_str()),
        "-machine".into(),
        machine,
        "-accel".into(),
        accel.into(),
    ];
    if let Some(cpu) = cpu {
        q.extend(["-cpu".into(), cpu.into()]);
    }
    // qboot on the default pc machine: sooner to the kernel than SeaBIOS.
    if let (None, "pc", Some(qboot)) = (&spec.machine, default_machine(spec.virt_type), &spec.qboot)
    {
        q.extend(["-bios".into(), path_str(qboot)?.to_owned()]);
    }
    q.extend([
        "-m".into(),
        spec.memory_mib.to_string(),
        "-smp".into(),
        spec.vcpus.to_string(),
        // Only the devices below: no VGA, floppy, CD-ROM, parallel port or
        // default NIC, and no host-wide configuration file.
        "-nodefaults".into(),
        "-no-user-config".into(),
        "-kernel".into(),
        path_str(&spec.kernel())?.to_owned(),
        "-initrd".into(),
        path_str(&spec.initrd())?.to_owned(),
        "-append".into(),
        spec.cmdline(),
        "-display".into(),
        "none".into(),
        "-no-reboot".into(),
    ]);
    let mut daemons = Vec::new();
    let mounts = spec.mounts()?;
    if spec.manifest.store_fs == ShareFs::Virtiofs {
        q.extend([
            "-object".into(),
            format!(
                "memory-backend-memfd,id=mem,size={}M,share=on",
                spec.memory_mib
            ),
            "-numa".into(),
            "node,memdev=mem".into(),
        ]);
        for (i, mount) in mounts.iter().enumerate() {
            let binary = virtiofsd::for_mount(spec, mount)?;
            let socket = socket_dir.join(format!("{}-{}.sock", spec.name, mount.tag));
            q.extend([
                "-chardev".into(),
                format!("socket,id=fs{i},path={}", qv(path_str(&socket)?)),
                "-device".into(),
                format!("vhost-user-fs-pci,chardev=fs{i},tag={}", qv(&mount.tag)),
            ]);
            daemons.push(VirtiofsDaemon {
                argv: vec![
                    path_str(&binary)?.to_owned(),
                    format!("--socket-path={}", path_str(&socket)?),
                    "-o".into(),
                    format!("source={}", qv(&mount.source)),
                    "-o".into(),
                    "cache=auto".into(),
                ],
                socket,
            });
        }
    } else {
        for (i, mount) in mounts.iter().enumerate() {
            let ro = if mount.read_only { ",readonly=on" } else { "" };
            q.extend([
                "-fsdev".into(),
                format!(
                    "local,id=fs{i},path={},security_model=none{ro}",
                    qv(&mount.source)
                ),
                "-device".into(),
                format!("virtio-9p-pci,fsdev=fs{i},mount_tag={}", qv(&mount.tag)),
            ]);
        }
    }
    for (i, volume) in spec.manifest.volumes.iter().enumerate() {
        // The serial, which names the disk in the guest, belongs to the device.
        q.extend([
            "-drive".into(),
            format!(
                "file={},format=raw,if=none,id=vol{i}",
                qv(path_str(&spec.volume_image(volume))?)
            ),
            "-device".into(),
            format!(
                "virtio-blk-pci,drive=vol{i},serial={}",
                qv(volume.name.as_str())
            ),
        ]);
    }
    // -netdev and -device rather than -nic, which the microvm machine
    // does not take.
    for (i, iface) in spec.interfaces.iter().enumerate() {
        let netdev = match &iface.link {
            Link::User(ports) => {
                let mut netdev = format!("user,id=net{i}");
                for p in ports {
                    // hostfwd=tcp:127.0.0.1:2222-:22
                    netdev.push_str(&format!(
                        ",hostfwd={}:{}:{}-:{}",
                        p.proto.as_str(),
                        qv(&p.address),
                        p.host,
                        p.guest
                    ));
                }
                netdev
            }
            Link::Bridge(br) => format!("bridge,id=net{i},br={}", qv(br.as_str())),
            // Refused by the capability check before rendering.
            Link::Network(_) => bail!("libvirt networks need the libvirt backend"),
        };
        let mut device = format!("virtio-net-pci,netdev=net{i}");
        if let Some(mac) = &iface.mac {
            device.push_str(&format!(",mac={}", qv(mac.as_str())));
        }
        q.extend(["-netdev".into(), netdev, "-device".into(), device]);
    }
    if spec.manifest.agent {
        // The guest agent's port, and the socket `miniguest exec` speaks
        // to it on.
        let socket = agent_socket(&spec.name);
        q.extend([
            "-chardev".into(),
            format!(
                "socket,id=agent,path={},server=on,wait=off",
                qv(path_str(&socket)?)
            ),
            "-device".into(),
            "virtio-serial-pci".into(),
            "-device".into(),
            format!(
                "virtserialport,chardev=agent,name={}",
                super::super::agent::PORT
            ),
        ]);
    }
    // QEMU reads each value from its file at start; the command line
    // holds only the path.
    for c in &spec.credentials {
        q.extend([
            "-fw_cfg".into(),
            format!("name={},file={}", c.fw_cfg_name(), qv(path_str(&c.source)?)),
        ]);
    }
    match &spec.console_log {
        Some(log) => q.extend(["-serial".into(), format!("file:{}", path_str(log)?)]),
        None => q.extend(["-serial".into(), "mon:stdio".into()]),
    }
    Ok(Invocation { daemons, qemu: q })
}
