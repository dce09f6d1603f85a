//! libvirt + QEMU: domain XML for direct kernel boot, the equivalent
//! `virt-install` command, and defining the domain through libvirt's API.

use std::fmt::Write;

use anyhow::Result;

use super::{mounts, path_str, GuestSpec};
use crate::cli::VirtType;
use crate::manifest::{InterfaceType, ShareFs};

/// The osinfo-db name for NixOS guests.
const OS_VARIANT: &str = "nixos-unstable";

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

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

pub fn domain_xml(spec: &GuestSpec) -> Result<String> {
    spec.require_vm()?;
    let virtiofs = spec.manifest.store_fs == ShareFs::Virtiofs;
    let mut x = String::new();
    writeln!(x, "<domain type='{}'>", virt_type_name(spec.virt_type))?;
    writeln!(x, "  <name>{}</name>", escape(spec.name.as_str()))?;
    writeln!(x, "  <memory unit='MiB'>{}</memory>", spec.memory_mib)?;
    writeln!(x, "  <vcpu>{}</vcpu>", spec.vcpus)?;
    if virtiofs {
        x.push_str("  <memoryBacking>\n    <source type='memfd'/>\n    <access mode='shared'/>\n  </memoryBacking>\n");
    }
    x.push_str("  <os>\n");
    writeln!(
        x,
        "    <type arch='{}' machine='{}'>hvm</type>",
        std::env::consts::ARCH,
        machine_type()
    )?;
    writeln!(
        x,
        "    <kernel>{}</kernel>",
        escape(path_str(&spec.kernel())?)
    )?;
    writeln!(
        x,
        "    <initrd>{}</initrd>",
        escape(path_str(&spec.initrd())?)
    )?;
    writeln!(x, "    <cmdline>{}</cmdline>", escape(&spec.cmdline()))?;
    x.push_str("  </os>\n");
    x.push_str("  <features>\n    <acpi/>\n  </features>\n");
    x.push_str("  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>restart</on_reboot>\n  <on_crash>destroy</on_crash>\n");
    x.push_str("  <devices>\n");
    for (i, volume) in spec.manifest.volumes.iter().enumerate() {
        x.push_str(
            "    <disk type='file' device='disk'>\n      <driver name='qemu' type='raw'/>\n",
        );
        writeln!(
            x,
            "      <source file='{}'/>",
            escape(path_str(&spec.volume_image(volume))?)
        )?;
        writeln!(x, "      <target dev='vd{}' bus='virtio'/>", disk_letter(i))?;
        writeln!(x, "      <serial>{}</serial>", escape(&volume.name))?;
        x.push_str("    </disk>\n");
    }
    for mount in mounts(spec)? {
        if virtiofs {
            x.push_str("    <filesystem type='mount' accessmode='passthrough'>\n      <driver type='virtiofs'/>\n");
        } else {
            x.push_str("    <filesystem type='mount' accessmode='squash'>\n");
        }
        writeln!(x, "      <source dir='{}'/>", escape(&mount.source))?;
        writeln!(x, "      <target dir='{}'/>", escape(&mount.tag))?;
        // libvirt refuses <readonly/> on virtiofs; the guest mounts it ro.
        if mount.read_only && !virtiofs {
            x.push_str("      <readonly/>\n");
        }
        x.push_str("    </filesystem>\n");
    }
    for iface in &spec.interfaces {
        let (kind, source) = match iface.kind {
            InterfaceType::User => ("user", None),
            InterfaceType::Bridge => ("bridge", Some("bridge")),
            InterfaceType::Network => ("network", Some("network")),
        };
        writeln!(x, "    <interface type='{kind}'>")?;
        if let (Some(attr), Some(value)) = (source, &iface.source) {
            writeln!(x, "      <source {attr}='{}'/>", escape(value))?;
        }
        if let Some(mac) = &iface.mac {
            writeln!(x, "      <mac address='{}'/>", escape(mac))?;
        }
        x.push_str("      <model type='virtio'/>\n    </interface>\n");
    }
    match &spec.console_log {
        Some(log) => {
            x.push_str("    <serial type='file'>\n");
            writeln!(x, "      <source path='{}'/>", escape(path_str(log)?))?;
            x.push_str("      <target port='0'/>\n    </serial>\n");
        }
        None => x.push_str("    <serial type='pty'>\n      <target port='0'/>\n    </serial>\n"),
    }
    x.push_str(
        "    <console type='pty'>\n      <target type='serial' port='0'/>\n    </console>\n",
    );
    x.push_str("  </devices>\n</domain>\n");
    Ok(x)
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
    use crate::shell::join;
    let virsh = |verb: &str, arg: &str| {
        join(&[
            "virsh".into(),
            "-c".into(),
            uri.into(),
            verb.into(),
            arg.into(),
        ])
    };
    Ok(format!(
        "{} <<'MINIGUEST_DOMAIN_XML'\n{}MINIGUEST_DOMAIN_XML\n{}\n",
        virsh("define", "/dev/stdin"),
        domain_xml(spec)?,
        virsh("start", spec.name.as_str())
    ))
}

/// The `virt-install` command that creates the same domain as `domain_xml`.
pub fn virt_install(spec: &GuestSpec, uri: &str) -> Result<Vec<String>> {
    spec.require_vm()?;
    let virtiofs = spec.manifest.store_fs == ShareFs::Virtiofs;
    let mut argv: Vec<String> = vec![
        "virt-install".into(),
        "--connect".into(),
        uri.into(),
        "--name".into(),
        vi(spec.name.as_str())?.replace('"', ""),
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
    for iface in &spec.interfaces {
        let mut opt = match (iface.kind, &iface.source) {
            (InterfaceType::User, _) => "user".to_owned(),
            (InterfaceType::Bridge, Some(br)) => format!("bridge={}", vi(br)?),
            (InterfaceType::Network, Some(net)) => format!("network={}", vi(net)?),
            (_, None) => anyhow::bail!("{:?} interface needs a source", iface.kind),
        };
        opt.push_str(",model=virtio");
        if let Some(mac) = &iface.mac {
            write!(opt, ",mac={}", vi(mac)?)?;
        }
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

/// Defines (or redefines) the domain through libvirt's API, by way of the
/// `miniguest-libvirt` helper installed beside this program.
pub fn define(spec: &GuestSpec, uri: &str) -> Result<()> {
    use anyhow::{bail, Context};
    use std::io::Write;
    use std::process::{Command, Stdio};

    let xml = domain_xml(spec)?;
    let helper = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("miniguest-libvirt")))
        .filter(|p| p.is_file())
        .or_else(|| super::find_program("miniguest-libvirt", &[]))
        .context(
            "miniguest-libvirt is not installed (built without libvirt support?); run the printed virt-install command instead",
        )?;
    spec.create_volume_images()?;
    let mut child = Command::new(&helper)
        .arg(uri)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run {}", helper.display()))?;
    child
        .stdin
        .take()
        .context("no stdin for miniguest-libvirt")?
        .write_all(xml.as_bytes())?;
    if !child.wait()?.success() {
        bail!(
            "could not define the libvirt domain for guest {}",
            spec.name
        );
    }
    Ok(())
}
