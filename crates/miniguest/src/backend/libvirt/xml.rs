//! The domain as libvirt's domain XML, written through the XML writer.

use anyhow::Result;

use super::domain::{Console, Domain};
use crate::contract::ShareFs;
use crate::formats::xml::XmlWriter;

/// The namespace of Miniguest's element in a domain's `<metadata>`.
pub const METADATA_NS: &str = "https://github.com/miniguest/miniguest/libvirt/1";

pub fn render(d: &Domain) -> Result<String> {
    let mut x = XmlWriter::new();
    x.open("domain", &[("type", d.virt_type)])?;
    x.text("name", &[], &d.name)?;
    x.text("uuid", &[], &d.uuid)?;
    // What libvirt's QEMU hook (installed by `define`) runs when the domain
    // starts and stops, however it is started.
    if let Some(hook) = &d.hook {
        x.open("metadata", &[])?;
        x.open("miniguest:guest", &[("xmlns:miniguest", METADATA_NS)])?;
        x.text("miniguest:hook", &[], hook)?;
        x.close()?;
        x.close()?;
    }
    x.text("memory", &[("unit", "MiB")], &d.memory_mib.to_string())?;
    x.text("vcpu", &[], &d.vcpus.to_string())?;
    if d.shared_memory {
        x.open("memoryBacking", &[])?;
        x.empty("source", &[("type", "memfd")])?;
        x.empty("access", &[("mode", "shared")])?;
        x.close()?;
    }
    x.open("os", &[])?;
    x.text("type", &[("arch", d.arch), ("machine", &d.machine)], "hvm")?;
    if let Some(loader) = &d.loader {
        x.text("loader", &[("type", "rom")], loader)?;
    }
    x.text("kernel", &[], &d.kernel)?;
    x.text("initrd", &[], &d.initrd)?;
    x.text("cmdline", &[], &d.cmdline)?;
    x.close()?;
    if !d.fw_cfg.is_empty() {
        x.open("sysinfo", &[("type", "fwcfg")])?;
        for (name, file) in &d.fw_cfg {
            x.empty("entry", &[("name", name), ("file", file)])?;
        }
        x.close()?;
    }
    x.open("features", &[])?;
    x.empty("acpi", &[])?;
    x.close()?;
    x.text("on_poweroff", &[], "destroy")?;
    x.text("on_reboot", &[], "restart")?;
    x.text("on_crash", &[], "destroy")?;
    x.open("devices", &[])?;
    for disk in &d.disks {
        x.open("disk", &[("type", "file"), ("device", "disk")])?;
        x.empty("driver", &[("name", "qemu"), ("type", "raw")])?;
        x.empty("source", &[("file", &disk.image)])?;
        x.empty("target", &[("dev", &disk.dev), ("bus", "virtio")])?;
        x.text("serial", &[], &disk.serial)?;
        x.close()?;
    }
    for fs in &d.filesystems {
        match fs.driver {
            ShareFs::Virtiofs => {
                x.open(
                    "filesystem",
                    &[("type", "mount"), ("accessmode", "passthrough")],
                )?;
                x.empty("driver", &[("type", "virtiofs")])?;
                if let Some(binary) = &fs.binary {
                    x.empty("binary", &[("path", binary)])?;
                }
            }
            ShareFs::NineP => {
                x.open("filesystem", &[("type", "mount"), ("accessmode", "squash")])?
            }
        }
        x.empty("source", &[("dir", &fs.source)])?;
        x.empty("target", &[("dir", &fs.tag)])?;
        // libvirt refuses <readonly/> on virtiofs; the guest mounts it ro.
        if fs.read_only && fs.driver == ShareFs::NineP {
            x.empty("readonly", &[])?;
        }
        x.close()?;
    }
    for nic in &d.interfaces {
        x.open("interface", &[("type", nic.kind)])?;
        if let Some(source) = &nic.source {
            x.empty("source", &[(nic.kind, source)])?;
        }
        x.empty("mac", &[("address", &nic.mac)])?;
        x.empty("model", &[("type", "virtio")])?;
        x.close()?;
    }
    // A pty either way, so that `virsh console` attaches; its log (kept
    // by virtlogd, started afresh at each boot) is the console file.
    x.open("serial", &[("type", "pty")])?;
    if let Console::PtyLogged(log) = &d.console {
        x.empty("log", &[("file", log), ("append", "off")])?;
    }
    x.empty("target", &[("port", "0")])?;
    x.close()?;
    x.open("console", &[("type", "pty")])?;
    x.empty("target", &[("type", "serial"), ("port", "0")])?;
    x.close()?;
    if d.agent_channel {
        x.open("channel", &[("type", "unix")])?;
        x.empty("source", &[("mode", "bind")])?;
        x.empty(
            "target",
            &[("type", "virtio"), ("name", crate::backend::agent::PORT)],
        )?;
        x.close()?;
    }
    // Nothing the guest never uses: libvirt would add a USB controller and
    // a memory balloon. (No graphics or video either; the pc machine's PS/2
    // controller is part of its board.)
    x.empty("controller", &[("type", "usb"), ("model", "none")])?;
    x.empty("memballoon", &[("model", "none")])?;
    x.close()?;
    x.close()?;
    x.finish()
}
