//! The domain as a `virt-install` command, and as an equivalent `virsh`
//! script for what virt-install would mangle.

use super::domain::{Console, Domain, OS_VARIANT};
use crate::contract::ShareFs;
use crate::formats::shell::{join, quote};

/// A value virt-install would mangle: it escapes XML-special characters in
/// what it is given a second time. The caller falls back to `virsh_script`.
#[derive(Debug, thiserror::Error)]
#[error("virt-install cannot take {0:?}")]
pub struct Unquotable(pub String);

/// Quotes a virt-install sub-option value: it splits on commas and honours
/// double quotes.
fn vi(value: &str) -> Result<String, Unquotable> {
    if value.contains(['\'', '"', '&', '<', '>']) {
        return Err(Unquotable(value.to_owned()));
    }
    if value.contains([',', '\\', ' ', '=']) {
        Ok(format!("\"{}\"", value.replace('\\', "\\\\")))
    } else {
        Ok(value.to_owned())
    }
}

/// The `virt-install` command that creates the domain. What it cannot say
/// (the hook command in the domain's metadata) the printed command leaves
/// out; `create --define` and the XML carry it.
pub fn argv(d: &Domain, uri: &str) -> Result<Vec<String>, Unquotable> {
    let mut argv: Vec<String> = vec![
        "virt-install".into(),
        "--connect".into(),
        uri.into(),
        "--name".into(),
        vi(&d.name)?.replace('"', ""),
        "--uuid".into(),
        d.uuid.clone(),
        "--os-variant".into(),
        OS_VARIANT.into(),
        "--virt-type".into(),
        d.virt_type.into(),
        "--machine".into(),
        vi(&d.machine)?,
        "--memory".into(),
        d.memory_mib.to_string(),
        "--vcpus".into(),
        d.vcpus.to_string(),
        "--import".into(),
        "--noautoconsole".into(),
        "--graphics".into(),
        "none".into(),
        "--features".into(),
        "acpi=on".into(),
        "--controller".into(),
        "type=usb,model=none".into(),
        "--memballoon".into(),
        "none".into(),
        "--boot".into(),
        format!(
            "{}kernel={},initrd={},kernel_args={}",
            match &d.loader {
                Some(loader) => format!("loader={},loader.type=rom,", vi(loader)?),
                None => String::new(),
            },
            vi(&d.kernel)?,
            vi(&d.initrd)?,
            vi(&d.cmdline)?
        ),
    ];
    if d.shared_memory {
        argv.push("--memorybacking".into());
        argv.push("source.type=memfd,access.mode=shared".into());
    }
    if d.disks.is_empty() {
        argv.extend(["--disk".into(), "none".into()]);
    }
    for disk in &d.disks {
        argv.push("--disk".into());
        argv.push(format!(
            "path={},format=raw,bus=virtio,serial={}",
            vi(&disk.image)?,
            vi(&disk.serial)?
        ));
    }
    for fs in &d.filesystems {
        let mut opt = format!("source={},target={}", vi(&fs.source)?, vi(&fs.tag)?);
        match fs.driver {
            ShareFs::Virtiofs => {
                opt.push_str(",driver.type=virtiofs,accessmode=passthrough");
                if let Some(binary) = &fs.binary {
                    opt.push_str(&format!(",binary.path={}", vi(binary)?));
                }
            }
            ShareFs::NineP => {
                opt.push_str(",accessmode=squash");
                if fs.read_only {
                    opt.push_str(",readonly=yes");
                }
            }
        }
        argv.push("--filesystem".into());
        argv.push(opt);
    }
    if d.interfaces.is_empty() {
        argv.extend(["--network".into(), "none".into()]);
    }
    for nic in &d.interfaces {
        let mut opt = match &nic.source {
            None => nic.kind.to_owned(),
            Some(source) => format!("{}={}", nic.kind, vi(source)?),
        };
        opt.push_str(&format!(",model=virtio,mac={}", vi(&nic.mac)?));
        argv.push("--network".into());
        argv.push(opt);
    }
    argv.push("--serial".into());
    argv.push(match &d.console {
        Console::PtyLogged(log) => format!("pty,log.file={},log.append=off", vi(log)?),
        Console::Pty => "pty".into(),
    });
    if !d.fw_cfg.is_empty() {
        let mut opt = String::from("type=fwcfg");
        for (i, (name, file)) in d.fw_cfg.iter().enumerate() {
            opt.push_str(&format!(
                ",entry{i}.name={},entry{i}.file={}",
                vi(name)?,
                vi(file)?
            ));
        }
        argv.extend(["--sysinfo".into(), opt]);
    }
    if d.agent_channel {
        argv.push("--channel".into());
        argv.push(format!(
            "unix,mode=bind,target.type=virtio,target.name={}",
            crate::backend::agent::PORT
        ));
    }
    Ok(argv)
}

/// The same domain as a `virsh define` script, from its XML.
pub fn virsh_script(xml: &str, name: &str, uri: &str) -> String {
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
    format!(
        "printf '%s' {} | {}\n{}\n",
        quote(xml),
        virsh("define", "/dev/stdin"),
        virsh("start", name)
    )
}
