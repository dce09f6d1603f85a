//! Facts about the host every backend asks: whether KVM works, where a
//! program is, the command hypervisors run around a guest's life.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::VirtType;
use crate::guest::Layout;

/// KVM only when the CPU advertises it and /dev/kvm opens: a /dev/kvm without
/// vmx/svm exists on some hosts and hangs guests.
pub fn kvm_usable() -> bool {
    let cpu_has_it = std::fs::read_to_string("/proc/cpuinfo")
        .map(|info| info.contains(" vmx") || info.contains(" svm"))
        .unwrap_or(false);
    cpu_has_it
        && std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok()
}

pub fn default_virt_type() -> VirtType {
    if kvm_usable() {
        VirtType::Kvm
    } else {
        VirtType::Qemu
    }
}

/// QEMU's qboot firmware (`qboot.rom`), where the installed QEMU has it:
/// beside its other firmware, found from the `qemu-system-*` in PATH or in
/// the usual data directories.
pub fn qboot() -> Option<PathBuf> {
    let beside_qemu = find_program(&super::qemu::invocation::qemu_binary(), &[])
        .and_then(|q| q.canonicalize().ok())
        .and_then(|q| Some(q.parent()?.parent()?.join("share/qemu/qboot.rom")));
    beside_qemu
        .into_iter()
        .chain(
            [
                "/usr/share/qemu/qboot.rom",
                "/usr/share/qemu-firmware/qboot.rom",
            ]
            .map(PathBuf::from),
        )
        .find(|p| p.is_file())
}

/// This program, told the directories of `layout`, running its `hook`
/// subcommand: what hypervisors run when a guest starts or stops.
pub fn hook_command(layout: &Layout) -> Result<String> {
    let exe = std::env::current_exe().context("cannot find this program")?;
    let words = [
        path_str(&exe)?,
        "--guests-dir",
        path_str(&layout.guests_dir)?,
        "--profiles-dir",
        path_str(&layout.profiles_dir)?,
        "hook",
    ];
    Ok(words
        .iter()
        .map(|w| crate::formats::shell::quote(w).into_owned())
        .collect::<Vec<_>>()
        .join(" "))
}

/// Whether this host is NixOS: its activation writes `/etc/NIXOS`, and its
/// os-release says `ID=nixos`. NixOS keeps /etc/systemd/system in the
/// store and builds libvirt with /var/lib as its configuration directory,
/// so some of what Miniguest writes goes elsewhere there.
pub fn is_nixos() -> bool {
    is_nixos_at(Path::new("/"))
}

fn is_nixos_at(root: &Path) -> bool {
    root.join("etc/NIXOS").exists()
        || std::fs::read_to_string(root.join("etc/os-release"))
            .is_ok_and(|text| text.lines().any(|l| l.trim() == "ID=nixos"))
}

/// One of Miniguest's helper programs: beside this executable, else in PATH.
pub fn helper_program(name: &str) -> Option<PathBuf> {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(name)))
        .filter(|p| p.is_file())
        .or_else(|| find_program(name, &[]))
}

/// Finds a program in PATH or in the given fallback locations.
pub fn find_program(name: &str, fallbacks: &[&str]) -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    from_path.or_else(|| fallbacks.iter().map(PathBuf::from).find(|p| p.is_file()))
}

/// Runs a hypervisor's tool with nothing on its standard input, and fails
/// in its own words when it fails.
pub fn run_checked(cmd: &mut std::process::Command, what: &str) -> Result<()> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

pub fn path_str(path: &Path) -> Result<&str> {
    path.to_str()
        .with_context(|| format!("path {} is not valid UTF-8", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nixos_is_known_by_its_marker_or_its_os_release() {
        let root = tempfile::tempdir().unwrap();
        let etc = root.path().join("etc");
        std::fs::create_dir(&etc).unwrap();
        std::fs::write(etc.join("os-release"), "NAME=Debian\nID=debian\n").unwrap();
        assert!(!is_nixos_at(root.path()));
        std::fs::write(etc.join("os-release"), "NAME=NixOS\nID=nixos\n").unwrap();
        assert!(is_nixos_at(root.path()));
        std::fs::remove_file(etc.join("os-release")).unwrap();
        std::fs::write(etc.join("NIXOS"), "").unwrap();
        assert!(is_nixos_at(root.path()));
    }
}
