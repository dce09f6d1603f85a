//! Plain QEMU: the `qemu-system-*` command line, with virtiofsd daemons
//! alongside when the store is shared over virtiofs. Also what `run` boots.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use anyhow::{bail, Context, Result};

use super::VirtType;
use super::{find_program, mounts, path_str, GuestSpec, Mount};
use crate::manifest::{Link, ShareFs};

/// QEMU's option syntax: a comma inside a value is written twice.
fn qv(value: &str) -> String {
    value.replace(',', ",,")
}

/// User-mode networking: works without any host setup.
pub fn default_network() -> Vec<crate::manifest::Interface> {
    vec![crate::manifest::Interface {
        link: Link::User(vec![]),
        mac: None,
    }]
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

/// The shared directory named in virtiofsd arguments: QEMU's `-o
/// source=DIR` (commas in DIR doubled) or the Rust virtiofsd's
/// `--shared-dir DIR`.
pub fn shared_dir_argument(args: &[String]) -> Option<String> {
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if let Some(dir) = arg.strip_prefix("--shared-dir=") {
            return Some(dir.to_owned());
        }
        let options = match arg.as_str() {
            "--shared-dir" => return it.next().cloned(),
            "-o" => it.next()?.as_str(),
            other => match other.strip_prefix("-o") {
                Some(rest) if !rest.is_empty() => rest,
                _ => continue,
            },
        };
        if let Some(dir) = source_option(options) {
            return Some(dir);
        }
    }
    None
}

/// `source=DIR` in a QEMU option list, where ",," is an escaped comma.
fn source_option(options: &str) -> Option<String> {
    let mut fields = vec![String::new()];
    let mut chars = options.chars().peekable();
    while let Some(c) = chars.next() {
        let field = fields.last_mut().expect("never empty");
        match c {
            ',' if chars.peek() == Some(&',') => {
                chars.next();
                field.push(',');
            }
            ',' => fields.push(String::new()),
            c => field.push(c),
        }
    }
    fields
        .into_iter()
        .find_map(|f| f.strip_prefix("source=").map(str::to_owned))
}

/// virtiofsd for one mount: read-only ones through `miniguest-virtiofsd`,
/// which makes the directory read-only for virtiofsd itself.
pub fn virtiofsd_for(spec: &GuestSpec, mount: &Mount) -> Result<PathBuf> {
    if mount.read_only {
        spec.read_only_virtiofsd.clone().context(
            "miniguest-virtiofsd is not installed beside miniguest; it keeps virtiofs shares read-only",
        )
    } else {
        virtiofsd_binary()
    }
}

fn virtiofs_daemons(spec: &GuestSpec, socket_dir: &Path) -> Result<Vec<(Mount, VirtiofsDaemon)>> {
    mounts(spec)?
        .into_iter()
        .map(|mount| {
            let binary = virtiofsd_for(spec, &mount)?;
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

/// The daemons and QEMU; virtiofsd sockets go in `socket_dir`, which may
/// be relative (the printed script runs in a directory of its own).
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
        let mut nic = match &iface.link {
            Link::User(ports) => {
                let mut nic = "user".to_owned();
                for p in ports {
                    // hostfwd=tcp:127.0.0.1:2222-:22
                    nic.push_str(&format!(
                        ",hostfwd={}:{}:{}-:{}",
                        p.proto.as_str(),
                        qv(&p.address),
                        p.host,
                        p.guest
                    ));
                }
                nic
            }
            Link::Bridge(br) => format!("bridge,br={}", qv(br)),
            Link::Network(_) => {
                bail!("libvirt networks need the libvirt backend; use bridge=BR or user")
            }
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

/// The guest as a shell script. With virtiofs, the daemons run in the
/// background from a private directory of the script's own (their sockets
/// live there), which is removed when QEMU exits.
pub fn script(spec: &GuestSpec) -> Result<String> {
    use crate::formats::shell::{join, quote};
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
        .map(|d| Ok(quote(path_str(&d.socket)?).into_owned()))
        .collect::<Result<_>>()?;
    out.push_str(&format!(
        "for s in {}; do while [ ! -S \"$s\" ]; do sleep 0.1; done; done\n",
        sockets.join(" ")
    ));
    out.push_str(&join(&inv.qemu));
    out.push_str("\n)\n");
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_shared_directory_in_either_virtiofsd_syntax() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            shared_dir_argument(&args(&[
                "--fd=3",
                "-o",
                "source=/nix/store,xattr",
                "-o",
                "cache=auto"
            ])),
            Some("/nix/store".into())
        );
        assert_eq!(
            shared_dir_argument(&args(&["-o", "cache=auto,source=/a,,b"])),
            Some("/a,b".into())
        );
        assert_eq!(
            shared_dir_argument(&args(&["-osource=/x"])),
            Some("/x".into())
        );
        assert_eq!(
            shared_dir_argument(&args(&["--shared-dir", "/y", "--readonly"])),
            Some("/y".into())
        );
        assert_eq!(
            shared_dir_argument(&args(&["--shared-dir=/z"])),
            Some("/z".into())
        );
        assert_eq!(shared_dir_argument(&args(&["--print-capabilities"])), None);
    }
}
