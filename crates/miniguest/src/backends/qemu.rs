//! Plain QEMU: the `qemu-system-*` command line, with virtiofsd daemons
//! alongside when the store is shared over virtiofs. Also what `run` boots.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use anyhow::{bail, Context, Result};

use super::{find_program, mounts, path_str, GuestSpec, Mount};
use crate::cli::VirtType;
use crate::manifest::{InterfaceType, ShareFs};

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

pub fn virtiofsd_binary() -> Result<PathBuf> {
    find_program(
        "virtiofsd",
        &[
            "/usr/lib/qemu/virtiofsd",
            "/usr/libexec/virtiofsd",
            "/usr/lib/virtiofsd",
        ],
    )
    .context("virtiofsd not found (install QEMU's or the standalone virtiofsd)")
}

/// A virtiofsd daemon QEMU connects to, one per shared directory.
pub struct VirtiofsDaemon {
    pub socket: PathBuf,
    pub argv: Vec<String>,
}

fn virtiofs_daemons(spec: &GuestSpec, socket_dir: &Path) -> Result<Vec<(Mount, VirtiofsDaemon)>> {
    let binary = virtiofsd_binary()?;
    mounts(spec)?
        .into_iter()
        .map(|mount| {
            let socket = socket_dir.join(format!("{}-{}.sock", spec.name, mount.tag));
            let argv = vec![
                path_str(&binary)?.to_owned(),
                format!("--socket-path={}", path_str(&socket)?),
                "-o".into(),
                format!("source={}", qv(&mount.source)),
                "-o".into(),
                "cache=auto".into(),
            ];
            Ok((mount, VirtiofsDaemon { socket, argv }))
        })
        .collect()
}

pub struct Invocation {
    pub daemons: Vec<VirtiofsDaemon>,
    pub qemu: Vec<String>,
}

pub fn invocation(spec: &GuestSpec, socket_dir: &Path) -> Result<Invocation> {
    spec.require_vm()?;
    let accel = match spec.virt_type {
        VirtType::Kvm => "kvm",
        VirtType::Qemu => "tcg",
    };
    let mut q: Vec<String> = vec![
        qemu_binary(),
        "-name".into(),
        qv(spec.name.as_str()),
        "-accel".into(),
        accel.into(),
        "-m".into(),
        spec.memory_mib.to_string(),
        "-smp".into(),
        spec.vcpus.to_string(),
        "-kernel".into(),
        path_str(&spec.kernel())?.to_owned(),
        "-initrd".into(),
        path_str(&spec.initrd())?.to_owned(),
        "-append".into(),
        spec.cmdline(),
        "-display".into(),
        "none".into(),
        "-no-reboot".into(),
    ];
    let mut daemons = Vec::new();
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
        for (i, (mount, daemon)) in virtiofs_daemons(spec, socket_dir)?.into_iter().enumerate() {
            q.extend([
                "-chardev".into(),
                format!("socket,id=fs{i},path={}", qv(path_str(&daemon.socket)?)),
                "-device".into(),
                format!("vhost-user-fs-pci,chardev=fs{i},tag={}", qv(&mount.tag)),
            ]);
            daemons.push(daemon);
        }
    } else {
        for mount in mounts(spec)? {
            let ro = if mount.read_only { ",readonly=on" } else { "" };
            q.extend([
                "-virtfs".into(),
                format!(
                    "local,path={},mount_tag={},security_model=none{ro}",
                    qv(&mount.source),
                    qv(&mount.tag)
                ),
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
            format!("virtio-blk-pci,drive=vol{i},serial={}", qv(&volume.name)),
        ]);
    }
    if spec.interfaces.is_empty() {
        q.extend(["-nic".into(), "none".into()]);
    }
    for iface in &spec.interfaces {
        let mut nic = match (iface.kind, &iface.source) {
            (InterfaceType::User, _) => "user".to_owned(),
            (InterfaceType::Bridge, Some(br)) => format!("bridge,br={}", qv(br)),
            (InterfaceType::Network, _) => {
                bail!("libvirt networks need the libvirt backend; use bridge=BR or user")
            }
            (InterfaceType::Bridge, None) => bail!("bridge interface needs a bridge name"),
        };
        nic.push_str(",model=virtio-net-pci");
        if let Some(mac) = &iface.mac {
            nic.push_str(&format!(",mac={}", qv(mac)));
        }
        q.extend(["-nic".into(), nic]);
    }
    match &spec.console_log {
        Some(log) => q.extend(["-serial".into(), format!("file:{}", path_str(log)?)]),
        None => q.extend(["-serial".into(), "mon:stdio".into()]),
    }
    Ok(Invocation { daemons, qemu: q })
}

/// The invocation as a shell script: daemons in the background, then QEMU.
pub fn script(inv: &Invocation) -> String {
    let mut out = String::new();
    for daemon in &inv.daemons {
        out.push_str(&crate::formats::shell::join(&daemon.argv));
        out.push_str(" &\n");
    }
    if !inv.daemons.is_empty() {
        // QEMU must not start before the sockets exist.
        let sockets: Vec<String> = inv
            .daemons
            .iter()
            .map(|d| crate::formats::shell::quote(&d.socket.display().to_string()).into_owned())
            .collect();
        out.push_str(&format!(
            "for s in {}; do while [ ! -S \"$s\" ]; do sleep 0.1; done; done\n",
            sockets.join(" ")
        ));
    }
    out.push_str(&crate::formats::shell::join(&inv.qemu));
    out.push('\n');
    out
}

/// Boots the guest in the foreground and returns QEMU's exit status.
pub fn boot(spec: &GuestSpec) -> Result<std::process::ExitStatus> {
    spec.create_volume_images()?;
    let socket_dir = tempfile::Builder::new().prefix("miniguest-run").tempdir()?;
    let inv = invocation(spec, socket_dir.path())?;
    let mut daemons: Vec<Child> = Vec::new();
    let result = (|| {
        for daemon in &inv.daemons {
            daemons.push(
                Command::new(&daemon.argv[0])
                    .args(&daemon.argv[1..])
                    // QEMU's virtiofsd logs every connection at its lowest level.
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .with_context(|| format!("cannot start {}", daemon.argv[0]))?,
            );
        }
        for daemon in &inv.daemons {
            wait_for_socket(&daemon.socket)?;
        }
        Command::new(&inv.qemu[0])
            .args(&inv.qemu[1..])
            .status()
            .with_context(|| format!("cannot start {}", inv.qemu[0]))
    })();
    for mut child in daemons {
        let _ = child.kill();
        let _ = child.wait();
    }
    result
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
