//! The guest output contract, Rust side. The single description of it is
//! `docs/contract.md`; `nix/lib/contract.nix` is the Nix side, and the test
//! suite evaluates that file and checks it against the constants and parser
//! here.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

pub const VERSION: u64 = 1;

/// Files and directories of a guest output, relative to its root.
pub mod layout {
    pub const MANIFEST: &str = "miniguest.json";
    /// Written by Miniguest before the manifest was versioned.
    pub const LEGACY_MANIFEST: &str = "miniguest-config.json";
    pub const KERNEL: &str = "kernel";
    pub const INITRD: &str = "initrd";
    pub const BOOT_DIR: &str = "boot";
    pub const INIT: &str = "boot/init";
    pub const REGISTRATION: &str = "boot/nix-path-registration";
    /// virtio tag under which the host's /nix/store is shared.
    pub const STORE_TAG: &str = "nix-store";
    /// virtio tag under which the guest's `boot` directory is shared.
    pub const BOOT_TAG: &str = "boot";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestType {
    Qemu,
    Lxc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ShareFs {
    #[default]
    #[serde(rename = "9p")]
    NineP,
    #[serde(rename = "virtiofs")]
    Virtiofs,
}

/// A writable block device the hypervisor provides; the guest finds it by
/// its serial (`/dev/disk/by-id/virtio-NAME`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Volume {
    pub name: String,
    pub mount_point: String,
    #[serde(rename = "sizeMiB")]
    pub size_mib: u64,
}

/// A host directory passed through to the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Share {
    pub tag: String,
    pub source: String,
    pub mount_point: String,
    #[serde(default)]
    pub read_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InterfaceType {
    /// User-mode networking (QEMU slirp); no host setup needed.
    User,
    /// Attach to a host bridge named by `source`.
    Bridge,
    /// Attach to a libvirt network named by `source`.
    Network,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Interface {
    #[serde(rename = "type")]
    pub kind: InterfaceType,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub mac: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    pub version: u64,
    pub guest_type: GuestType,
    #[serde(default)]
    pub store_fs: ShareFs,
    #[serde(default)]
    pub kernel_params: Vec<String>,
    #[serde(rename = "memoryMiB", default = "default_memory")]
    pub memory_mib: u64,
    #[serde(default = "default_vcpus")]
    pub vcpus: u32,
    #[serde(default)]
    pub volumes: Vec<Volume>,
    #[serde(default)]
    pub shares: Vec<Share>,
    #[serde(default)]
    pub interfaces: Vec<Interface>,
}

pub const DEFAULT_MEMORY_MIB: u64 = 1024;
pub const DEFAULT_VCPUS: u32 = 1;

fn default_memory() -> u64 {
    DEFAULT_MEMORY_MIB
}

fn default_vcpus() -> u32 {
    DEFAULT_VCPUS
}

/// What the first Miniguest release wrote: its module options verbatim.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyConfig {
    guest_type: GuestType,
    #[serde(default)]
    qemu: Option<LegacyQemu>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyQemu {
    #[serde(default)]
    fs_type: Option<ShareFs>,
}

impl Manifest {
    pub fn parse(json: &str) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(json).context("not valid JSON")?;
        match value.get("version") {
            None => bail!("missing field `version`"),
            Some(v) if v.as_u64() == Some(VERSION) => {}
            Some(v) => {
                bail!("unsupported manifest version {v} (this miniguest reads version {VERSION})")
            }
        }
        let manifest: Manifest = serde_json::from_value(value)?;
        manifest.check()?;
        Ok(manifest)
    }

    fn parse_legacy(json: &str) -> Result<Self> {
        let legacy: LegacyConfig = serde_json::from_str(json)?;
        Ok(Manifest {
            version: VERSION,
            guest_type: legacy.guest_type,
            store_fs: legacy.qemu.and_then(|q| q.fs_type).unwrap_or_default(),
            kernel_params: vec!["console=ttyS0".into()],
            memory_mib: DEFAULT_MEMORY_MIB,
            vcpus: DEFAULT_VCPUS,
            volumes: vec![],
            shares: vec![],
            interfaces: vec![],
        })
    }

    /// Reads the manifest of a guest output (or of a guest link).
    pub fn load(guest_root: &Path) -> Result<Self> {
        let current = guest_root.join(layout::MANIFEST);
        match std::fs::read_to_string(&current) {
            Ok(text) => {
                return Self::parse(&text)
                    .with_context(|| format!("invalid guest manifest {}", current.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", current.display())),
        }
        let legacy = guest_root.join(layout::LEGACY_MANIFEST);
        let text = std::fs::read_to_string(&legacy).with_context(|| {
            format!(
                "{} has no {} (is it a Miniguest guest?)",
                guest_root.display(),
                layout::MANIFEST
            )
        })?;
        Self::parse_legacy(&text)
            .with_context(|| format!("invalid guest manifest {}", legacy.display()))
    }

    /// A guest with no writable storage keeps nothing across boots.
    pub fn is_stateless(&self) -> bool {
        self.volumes.is_empty() && self.shares.iter().all(|s| s.read_only)
    }

    fn check(&self) -> Result<()> {
        if self.memory_mib == 0 || self.vcpus == 0 {
            bail!("memoryMiB and vcpus must be positive");
        }
        let reserved = [layout::STORE_TAG, layout::BOOT_TAG];
        let mut tags: Vec<&str> = self.shares.iter().map(|s| s.tag.as_str()).collect();
        tags.extend(self.volumes.iter().map(|v| v.name.as_str()));
        for (i, tag) in tags.iter().enumerate() {
            if !valid_tag(tag) {
                bail!("share tag or volume name {tag:?} must be 1-36 characters of [A-Za-z0-9_-]");
            }
            if reserved.contains(tag) {
                bail!("share tag or volume name {tag:?} is reserved");
            }
            if tags[..i].contains(tag) {
                bail!("share tag or volume name {tag:?} is used twice");
            }
        }
        for mount in self
            .shares
            .iter()
            .map(|s| &s.mount_point)
            .chain(self.volumes.iter().map(|v| &v.mount_point))
        {
            if !mount.starts_with('/') {
                bail!("mount point {mount:?} must be absolute");
            }
        }
        for share in &self.shares {
            if !share.source.starts_with('/') {
                bail!(
                    "share source {:?} must be an absolute host path",
                    share.source
                );
            }
        }
        Ok(())
    }
}

// virtio-9p tags are limited to 36 bytes; the same rule keeps volume serials
// and file names plain.
fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 36
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_manifest_gets_defaults() {
        let m = Manifest::parse(r#"{"version":1,"guestType":"lxc"}"#).unwrap();
        assert_eq!(m.guest_type, GuestType::Lxc);
        assert_eq!(m.store_fs, ShareFs::NineP);
        assert_eq!(m.memory_mib, DEFAULT_MEMORY_MIB);
        assert!(m.is_stateless());
    }

    #[test]
    fn full_manifest_round_trips() {
        let json = r#"{"version":1,"guestType":"qemu","storeFs":"virtiofs",
            "kernelParams":["console=ttyS0"],"memoryMiB":2048,"vcpus":2,
            "volumes":[{"name":"var","mountPoint":"/var","sizeMiB":1024}],
            "shares":[{"tag":"data","source":"/srv/data","mountPoint":"/data"}],
            "interfaces":[{"type":"bridge","source":"br0","mac":"52:54:00:00:00:01"}]}"#;
        let m = Manifest::parse(json).unwrap();
        assert_eq!(m.store_fs, ShareFs::Virtiofs);
        assert!(!m.is_stateless());
        let again = Manifest::parse(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(m, again);
    }

    #[test]
    fn errors_name_the_problem() {
        let err = |j: &str| format!("{:#}", Manifest::parse(j).unwrap_err());
        assert!(err(r#"{"guestType":"qemu"}"#).contains("missing field `version`"));
        assert!(
            err(r#"{"version":7,"guestType":"qemu"}"#).contains("unsupported manifest version 7")
        );
        assert!(err(r#"{"version":1}"#).contains("missing field `guestType`"));
        assert!(err(r#"{"version":1,"guestType":"xen"}"#).contains("unknown variant `xen`"));
        assert!(
            err(r#"{"version":1,"guestType":"lxc","memory":1}"#).contains("unknown field `memory`")
        );
        assert!(err(r#"{"version":1,"guestType":"lxc","shares":[{"tag":"boot","source":"/x","mountPoint":"/y"}]}"#)
            .contains("reserved"));
        assert!(err(r#"{"version":1,"guestType":"lxc","volumes":[{"name":"a b","mountPoint":"/y","sizeMiB":1}]}"#)
            .contains("[A-Za-z0-9_-]"));
    }

    #[test]
    fn legacy_config_is_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(layout::LEGACY_MANIFEST),
            r#"{"enable":true,"guestType":"qemu","qemu":{"fsType":"virtiofs"}}"#,
        )
        .unwrap();
        let m = Manifest::load(dir.path()).unwrap();
        assert_eq!(m.guest_type, GuestType::Qemu);
        assert_eq!(m.store_fs, ShareFs::Virtiofs);
    }
}
