//! libvirt + QEMU: domain XML for direct kernel boot, the equivalent
//! `virt-install` command, and defining the domain through libvirt's API.

use std::fmt::Write;

use anyhow::{bail, Context, Result};

use super::VirtType;
use super::{mounts, path_str, GuestSpec};
use crate::formats::xml::XmlWriter;
use crate::manifest::{Interface, Link, ShareFs};

/// The namespace of Miniguest's element in a domain's `<metadata>`.
const METADATA_NS: &str = "https://github.com/miniguest/miniguest/libvirt/1";

/// libvirt's QEMU hook: runs the command a Miniguest domain's metadata
/// names when it starts and stops.
const QEMU_HOOK: &str = include_str!("libvirt-qemu-hook.sh");
const QEMU_HOOK_PATH: &str = "/etc/libvirt/hooks/qemu.d/miniguest";

/// Installs the QEMU hook if it is absent (or an older one of ours). Says
/// so, since libvirtd only runs hooks it found when it started.
fn install_hook() -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::path::Path::new(QEMU_HOOK_PATH);
    match std::fs::read_to_string(path) {
        Ok(text) if text == QEMU_HOOK => return Ok(()),
        Ok(text) if !text.contains("\n# miniguest: ") => {
            eprintln!("warning: {QEMU_HOOK_PATH} is not Miniguest's; guests started without `miniguest start` are not kept from garbage collection");
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
    let tmp = dir.join(".miniguest.new");
    std::fs::write(&tmp, QEMU_HOOK)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, path)?;
    eprintln!("note: installed {QEMU_HOOK_PATH}; restart libvirtd once so that it keeps what guests started by `virsh start` or at boot are running from");
    Ok(())
}

/// Guests that ask for no particular network get libvirt's `default`
/// network where it has one, as virt-install would, and user-mode
/// networking where it has none (a host without libvirt's network setup).
pub fn default_network(uri: &str) -> Result<Vec<Interface>> {
    let has_default = helper(&["has-network", uri, "default"], None)?.is_ok_and(|out| out == "yes");
    let link = if has_default {
        Link::Network("default".into())
    } else {
        Link::User(vec![])
    };
    Ok(vec![Interface { link, mac: None }])
}

fn unresolved_network(spec: &GuestSpec) -> Result<()> {
    if spec.default_network {
        bail!(
            "internal error: libvirt's default network was not chosen for guest {}",
            spec.name
        );
    }
    Ok(())
}

/// The interface's MAC address: the declared one, else one derived from
/// the guest's name and the interface's place. libvirt would draw a new
/// one at every define, so defining again would never leave the domain
/// `unchanged`, and the guest's address would change.
fn mac_for(spec: &GuestSpec, index: usize, iface: &Interface) -> String {
    if let Some(mac) = &iface.mac {
        return mac.clone();
    }
    // FNV-1a: stable across hosts and releases, unlike std's hasher.
    let mut hash: u32 = 0x811c_9dc5;
    for b in spec.name.as_str().bytes().chain([0, index as u8]) {
        hash = (hash ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    let [_, a, b, c] = hash.to_be_bytes();
    // 52:54:00 is QEMU's own prefix, locally administered.
    format!("52:54:00:{a:02x}:{b:02x}:{c:02x}")
}

/// The osinfo-db name for NixOS guests.
const OS_VARIANT: &str = "nixos-unstable";

/// Pinned so that the XML and the virt-install command give the same
/// machine (virt-install would otherwise pick q35 on x86_64).
fn machine_type() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" | "x86" => "pc",
        _ => "virt",
    }
}

fn virt_type_name(t: VirtType) -> &'static str {
    match t {
        VirtType::Kvm => "kvm",
        VirtType::Qemu => "qemu",
    }
}

/// The UUID a new domain gets: derived from the guest's name (a UUID v5),
/// so that the printed XML defines the same domain every time, as
/// NixVirt-style redefinitions at every switch need. libvirt would draw a
/// new one, and refuse a second definition of the name.
pub fn stable_uuid(spec: &GuestSpec) -> String {
    let namespace = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, METADATA_NS.as_bytes());
    uuid::Uuid::new_v5(&namespace, spec.name.as_str().as_bytes()).to_string()
}

pub fn domain_xml(spec: &GuestSpec) -> Result<String> {
    domain_xml_with_uuid(spec, &stable_uuid(spec))
}

/// The domain XML with a given UUID: that of an existing domain of that
/// name, so that defining it again updates that domain instead of
/// clashing with it.
pub fn domain_xml_with_uuid(spec: &GuestSpec, uuid: &str) -> Result<String> {
    spec.require_vm()?;
    unresolved_network(spec)?;
    let virtiofs = spec.manifest.store_fs == ShareFs::Virtiofs;
    let mut x = XmlWriter::new();
    x.open("domain", &[("type", virt_type_name(spec.virt_type))])?;
    x.text("name", &[], spec.name.as_str())?;
    x.text("uuid", &[], uuid)?;
    // What libvirt's QEMU hook (installed by `define`) runs when the domain
    // starts and stops, however it is started.
    if let Some(hook) = &spec.hook {
        x.open("metadata", &[])?;
        x.open("miniguest:guest", &[("xmlns:miniguest", METADATA_NS)])?;
        x.text("miniguest:hook", &[], hook)?;
        x.close()?;
        x.close()?;
    }
    x.text("memory", &[("unit", "MiB")], &spec.memory_mib.to_string())?;
    x.text("vcpu", &[], &spec.vcpus.to_string())?;
    if virtiofs {
        x.open("memoryBacking", &[])?;
        x.empty("source", &[("type", "memfd")])?;
        x.empty("access", &[("mode", "shared")])?;
        x.close()?;
    }
    x.open("os", &[])?;
    x.text(
        "type",
        &[
            ("arch", std::env::consts::ARCH),
            ("machine", machine_type()),
        ],
        "hvm",
    )?;
    x.text("kernel", &[], path_str(&spec.kernel())?)?;
    x.text("initrd", &[], path_str(&spec.initrd())?)?;
    x.text("cmdline", &[], &spec.cmdline())?;
    x.close()?;
    x.open("features", &[])?;
    x.empty("acpi", &[])?;
    x.close()?;
    x.text("on_poweroff", &[], "destroy")?;
    x.text("on_reboot", &[], "restart")?;
    x.text("on_crash", &[], "destroy")?;
    x.open("devices", &[])?;
    for (i, volume) in spec.manifest.volumes.iter().enumerate() {
        x.open("disk", &[("type", "file"), ("device", "disk")])?;
        x.empty("driver", &[("name", "qemu"), ("type", "raw")])?;
        x.empty("source", &[("file", path_str(&spec.volume_image(volume))?)])?;
        let dev = format!("vd{}", disk_letter(i));
        x.empty("target", &[("dev", &dev), ("bus", "virtio")])?;
        x.text("serial", &[], &volume.name)?;
        x.close()?;
    }
    for mount in mounts(spec)? {
        if virtiofs {
            x.open(
                "filesystem",
                &[("type", "mount"), ("accessmode", "passthrough")],
            )?;
            x.empty("driver", &[("type", "virtiofs")])?;
            // For read-only shares libvirt starts this binary in place of
            // its own virtiofsd, which cannot refuse writes.
            if mount.read_only {
                let binary = super::qemu::virtiofsd_for(spec, &mount)?;
                x.empty("binary", &[("path", path_str(&binary)?)])?;
            }
        } else {
            x.open("filesystem", &[("type", "mount"), ("accessmode", "squash")])?;
        }
        x.empty("source", &[("dir", &mount.source)])?;
        x.empty("target", &[("dir", &mount.tag)])?;
        // libvirt refuses <readonly/> on virtiofs; the guest mounts it ro.
        if mount.read_only && !virtiofs {
            x.empty("readonly", &[])?;
        }
        x.close()?;
    }
    for (i, iface) in spec.interfaces.iter().enumerate() {
        let (kind, source) = match &iface.link {
            Link::User(ports) if !ports.is_empty() => {
                bail!("port forwarding needs plain QEMU (`miniguest run`, `create -t qemu`); libvirt's user-mode networking forwards no ports")
            }
            Link::User(_) => ("user", None),
            Link::Bridge(br) => ("bridge", Some(("bridge", br))),
            Link::Network(net) => ("network", Some(("network", net))),
        };
        x.open("interface", &[("type", kind)])?;
        if let Some((attr, value)) = source {
            x.empty("source", &[(attr, value)])?;
        }
        let mac = mac_for(spec, i, iface);
        x.empty("mac", &[("address", &mac)])?;
        x.empty("model", &[("type", "virtio")])?;
        x.close()?;
    }
    match &spec.console_log {
        Some(log) => {
            x.open("serial", &[("type", "file")])?;
            x.empty("source", &[("path", path_str(log)?)])?;
        }
        None => x.open("serial", &[("type", "pty")])?,
    }
    x.empty("target", &[("port", "0")])?;
    x.close()?;
    x.open("console", &[("type", "pty")])?;
    x.empty("target", &[("type", "serial"), ("port", "0")])?;
    x.close()?;
    x.close()?;
    x.close()?;
    x.finish()
}

fn disk_letter(index: usize) -> char {
    // Volumes are few; past 26 libvirt would want vdaa, which nobody declares.
    (b'a' + (index % 26) as u8) as char
}

/// A value virt-install would mangle: it escapes XML-special characters in
/// what it is given a second time. The caller falls back to `virsh_script`.
#[derive(Debug, thiserror::Error)]
#[error("virt-install cannot take {0:?}")]
pub struct Unquotable(pub String);

/// Quotes a virt-install sub-option value: it splits on commas and honours
/// double quotes.
fn vi(value: &str) -> std::result::Result<String, Unquotable> {
    if value.contains(['\'', '"', '&', '<', '>']) {
        return Err(Unquotable(value.to_owned()));
    }
    if value.contains([',', '\\', ' ', '=']) {
        Ok(format!("\"{}\"", value.replace('\\', "\\\\")))
    } else {
        Ok(value.to_owned())
    }
}

/// The same domain as a `virsh define` script, for what virt-install mangles.
pub fn virsh_script(spec: &GuestSpec, uri: &str) -> Result<String> {
    use crate::formats::shell::join;
    let virsh = |verb: &str, arg: &str| {
        join(&[
            "virsh".into(),
            "-c".into(),
            uri.into(),
            verb.into(),
            arg.into(),
        ])
    };
    // The XML travels as one quoted word, never as a here-document whose
    // delimiter a value could contain.
    Ok(format!(
        "printf '%s' {} | {}\n{}\n",
        crate::formats::shell::quote(&domain_xml(spec)?),
        virsh("define", "/dev/stdin"),
        virsh("start", spec.name.as_str())
    ))
}

/// The `virt-install` command that creates the same domain as `domain_xml`.
pub fn virt_install(spec: &GuestSpec, uri: &str) -> Result<Vec<String>> {
    spec.require_vm()?;
    unresolved_network(spec)?;
    let virtiofs = spec.manifest.store_fs == ShareFs::Virtiofs;
    let mut argv: Vec<String> = vec![
        "virt-install".into(),
        "--connect".into(),
        uri.into(),
        "--name".into(),
        vi(spec.name.as_str())?.replace('"', ""),
        "--uuid".into(),
        stable_uuid(spec),
        "--os-variant".into(),
        OS_VARIANT.into(),
        "--virt-type".into(),
        virt_type_name(spec.virt_type).into(),
        "--machine".into(),
        machine_type().into(),
        "--memory".into(),
        spec.memory_mib.to_string(),
        "--vcpus".into(),
        spec.vcpus.to_string(),
        "--import".into(),
        "--noautoconsole".into(),
        "--graphics".into(),
        "none".into(),
        "--features".into(),
        "acpi=on".into(),
        "--boot".into(),
        format!(
            "kernel={},initrd={},kernel_args={}",
            vi(path_str(&spec.kernel())?)?,
            vi(path_str(&spec.initrd())?)?,
            vi(&spec.cmdline())?
        ),
    ];
    if virtiofs {
        argv.push("--memorybacking".into());
        argv.push("source.type=memfd,access.mode=shared".into());
    }
    if spec.manifest.volumes.is_empty() {
        argv.extend(["--disk".into(), "none".into()]);
    }
    for volume in &spec.manifest.volumes {
        argv.push("--disk".into());
        argv.push(format!(
            "path={},format=raw,bus=virtio,serial={}",
            vi(path_str(&spec.volume_image(volume))?)?,
            vi(&volume.name)?
        ));
    }
    for mount in mounts(spec)? {
        let mut opt = format!("source={},target={}", vi(&mount.source)?, vi(&mount.tag)?);
        if virtiofs {
            opt.push_str(",driver.type=virtiofs,accessmode=passthrough");
        } else {
            opt.push_str(",accessmode=squash");
            if mount.read_only {
                opt.push_str(",readonly=yes");
            }
        }
        argv.push("--filesystem".into());
        argv.push(opt);
    }
    if spec.interfaces.is_empty() {
        argv.extend(["--network".into(), "none".into()]);
    }
    for (i, iface) in spec.interfaces.iter().enumerate() {
        let mut opt = match &iface.link {
            Link::User(ports) if !ports.is_empty() => {
                anyhow::bail!(
                    "port forwarding needs plain QEMU (`miniguest run`, `create -t qemu`)"
                )
            }
            Link::User(_) => "user".to_owned(),
            Link::Bridge(br) => format!("bridge={}", vi(br)?),
            Link::Network(net) => format!("network={}", vi(net)?),
        };
        opt.push_str(",model=virtio");
        write!(opt, ",mac={}", vi(&mac_for(spec, i, iface))?)?;
        argv.push("--network".into());
        argv.push(opt);
    }
    match &spec.console_log {
        Some(log) => {
            argv.push("--serial".into());
            argv.push(format!("file,path={}", vi(path_str(log)?)?));
        }
        None => {
            argv.push("--console".into());
            argv.push("pty,target_type=serial".into());
        }
    }
    Ok(argv)
}

/// Defines the domain through libvirt's API, by way of the
/// `miniguest-libvirt` helper installed beside this program, or updates the
/// domain of that name in place (same UUID; a running domain keeps running
/// and boots the new definition next time). Says which it did.
pub fn define(spec: &GuestSpec, uri: &str, autostart: bool) -> Result<super::Defined> {
    let name = spec.name.as_str();
    let uuid = helper(&["uuid", uri, name], None)?
        .with_context(|| format!("could not look up libvirt domain {name}"))?;
    let uuid = if uuid.is_empty() {
        stable_uuid(spec)
    } else {
        uuid
    };
    let xml = domain_xml_with_uuid(spec, &uuid)?;
    spec.create_volume_images()?;
    install_hook()?;
    let mut args = vec!["define", uri, name];
    if autostart {
        args.push("--autostart");
    }
    let verdict = helper(&args, Some(xml.as_bytes()))?
        .with_context(|| format!("could not define the libvirt domain for guest {name}"))?;
    super::Defined::parse(&verdict)
}

/// Runs `miniguest-libvirt ARGS` (beside this program, else in PATH), with
/// `stdin` piped in when given. Fails if the helper is missing; otherwise
/// says whether it succeeded and, if so, what it printed (trimmed), or what
/// went wrong in the helper's own words.
pub(super) fn helper(args: &[&str], stdin: Option<&[u8]>) -> Result<Result<String>> {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let program = super::helper_program("miniguest-libvirt").context(
        "miniguest-libvirt is not installed (built without libvirt support?); run the printed virt-install command instead",
    )?;
    let mut child = Command::new(&program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", program.display()))?;
    if let Some(bytes) = stdin {
        child
            .stdin
            .take()
            .context("no stdin for miniguest-libvirt")?
            .write_all(bytes)?;
    }
    let out = child.wait_with_output()?;
    Ok(if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        let said = String::from_utf8_lossy(&out.stderr);
        let said = said.trim().trim_start_matches("error: ");
        Err(if said.is_empty() {
            anyhow::anyhow!("miniguest-libvirt {} failed ({})", args[0], out.status)
        } else {
            anyhow::anyhow!("{}", said.replace('\n', "; "))
        })
    })
}
