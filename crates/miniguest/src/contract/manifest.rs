//! The guest manifest (`miniguest.json`): what a guest output tells the
//! host about itself. It is the guest's word, so it is read as untrusted
//! data: every name and path is a checked value (`values`), the file is
//! bounded, and every refusal names its field (`volumes[0].mountPoint: …`).

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::files;
use super::values::{
    plain_text, CredentialName, FsType, HostPath, IfName, Mac, MountPoint, NetName, Tag, VolumeName,
};

pub const VERSION: u64 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestType {
    Qemu,
    Lxc,
}

impl GuestType {
    pub fn as_str(self) -> &'static str {
        match self {
            GuestType::Qemu => "qemu",
            GuestType::Lxc => "lxc",
        }
    }
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
    pub name: VolumeName,
    pub mount_point: MountPoint,
    #[serde(rename = "sizeMiB")]
    pub size_mib: u64,
    /// The file system Miniguest formats a new VM volume with.
    #[serde(default = "default_volume_fs")]
    pub fs_type: FsType,
}

pub const DEFAULT_VOLUME_FS: &str = "ext4";

fn default_volume_fs() -> FsType {
    FsType::try_from(DEFAULT_VOLUME_FS).expect("the default is valid")
}

pub use super::values::limits::{SHARE_TAG as MAX_SHARE_TAG, VOLUME_NAME as MAX_VOLUME_NAME};

/// A host directory passed through to the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Share {
    pub tag: Tag,
    pub source: HostPath,
    pub mount_point: MountPoint,
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

/// A network interface. What it attaches to is typed: a bridge or a
/// network always has its (checked) name, a user-mode interface never has
/// one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawInterface", into = "RawInterface")]
pub struct Interface {
    pub link: Link,
    pub mac: Option<Mac>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// User-mode networking, with the host ports it forwards to the guest.
    User(Vec<PortForward>),
    Bridge(IfName),
    Network(NetName),
}

impl Link {
    pub fn kind(&self) -> InterfaceType {
        match self {
            Link::User(_) => InterfaceType::User,
            Link::Bridge(_) => InterfaceType::Bridge,
            Link::Network(_) => InterfaceType::Network,
        }
    }
}

/// A host port forwarded to a guest port (user-mode networking).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortForward {
    #[serde(default)]
    pub proto: Proto,
    /// The host address it listens on: loopback unless said otherwise.
    #[serde(default = "loopback")]
    pub address: String,
    pub host: u16,
    pub guest: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    #[default]
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

fn loopback() -> String {
    "127.0.0.1".into()
}

/// The manifest's shape of an interface: `{ type, source, mac }`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawInterface {
    #[serde(rename = "type")]
    kind: InterfaceType,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    mac: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    forward_ports: Vec<PortForward>,
}

impl TryFrom<RawInterface> for Interface {
    type Error = String;

    fn try_from(raw: RawInterface) -> Result<Self, String> {
        if raw.kind != InterfaceType::User && !raw.forward_ports.is_empty() {
            return Err("forwardPorts: only a user interface forwards ports".into());
        }
        fn field(name: &str) -> impl Fn(String) -> String + '_ {
            move |e| format!("{name}: {e}")
        }
        let link = match (raw.kind, raw.source) {
            (InterfaceType::User, None) => {
                for (j, p) in raw.forward_ports.iter().enumerate() {
                    let at = format!("forwardPorts[{j}]");
                    p.check().map_err(field(&at))?;
                }
                Link::User(raw.forward_ports)
            }
            (InterfaceType::User, Some(_)) => {
                return Err("source: a user interface takes no source".into())
            }
            (InterfaceType::Bridge, Some(br)) => {
                Link::Bridge(IfName::try_from(br).map_err(field("source"))?)
            }
            (InterfaceType::Network, Some(net)) => {
                Link::Network(NetName::try_from(net).map_err(field("source"))?)
            }
            (kind, None) => return Err(format!("source: a {} interface needs one", kind.as_str())),
        };
        let mac = raw
            .mac
            .map(Mac::try_from)
            .transpose()
            .map_err(field("mac"))?;
        Ok(Interface { link, mac })
    }
}

impl From<Interface> for RawInterface {
    fn from(i: Interface) -> Self {
        let (kind, source, forward_ports) = match i.link {
            Link::User(ports) => (InterfaceType::User, None, ports),
            Link::Bridge(br) => (InterfaceType::Bridge, Some(br.into()), vec![]),
            Link::Network(net) => (InterfaceType::Network, Some(net.into()), vec![]),
        };
        RawInterface {
            kind,
            source,
            mac: i.mac.map(String::from),
            forward_ports,
        }
    }
}

impl PortForward {
    fn check(&self) -> Result<(), String> {
        if self.address.parse::<std::net::IpAddr>().is_err() {
            return Err(format!("address: {:?} is not an IP address", self.address));
        }
        if self.host == 0 || self.guest == 0 {
            return Err("ports must be 1-65535".into());
        }
        Ok(())
    }
}

impl InterfaceType {
    pub fn as_str(self) -> &'static str {
        match self {
            InterfaceType::User => "user",
            InterfaceType::Bridge => "bridge",
            InterfaceType::Network => "network",
        }
    }
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
    /// None: the backend's default network (user-mode, or libvirt's
    /// `default`); an empty list: no network.
    #[serde(default)]
    pub interfaces: Option<Vec<Interface>>,
    /// A VM guest runs the QEMU guest agent (qemu-ga): commands reach it
    /// through the agent's virtio-serial port.
    #[serde(default)]
    pub agent: bool,
    /// The systemd credentials the guest expects, by name only: their
    /// sources are the host's to give (`create --credential`), never the
    /// guest's to name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<CredentialName>,
    /// The command (run in the guest) whose first word says whether its
    /// boot has finished: `running`, `degraded`, anything else for not yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_command: Option<Vec<String>>,
    /// The guest's NixOS system (`system.build.toplevel`), whose
    /// `bin/switch-to-configuration` applies it to a running guest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toplevel: Option<HostPath>,
}

pub const DEFAULT_MEMORY_MIB: u64 = 1024;
pub const DEFAULT_VCPUS: u32 = 1;

fn default_memory() -> u64 {
    DEFAULT_MEMORY_MIB
}

fn default_vcpus() -> u32 {
    DEFAULT_VCPUS
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
        let manifest: Manifest = deserialize_naming_field(value)?;
        manifest.check()?;
        Ok(manifest)
    }

    /// Reads the manifest of a guest output (or of a guest link). The file
    /// is the guest's word, so it must be a regular file of bounded size:
    /// a link to `/dev/zero` or a FIFO is refused, not read.
    pub fn load(guest_root: &Path) -> Result<Self> {
        let current = guest_root.join(files::MANIFEST);
        match read_bounded(&current) {
            Ok(text) => {
                return Self::parse(&text)
                    .with_context(|| format!("invalid guest manifest {}", current.display()))
            }
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
        let legacy = guest_root.join(files::LEGACY_MANIFEST);
        let text = read_bounded(&legacy).map_err(|e| {
            if is_not_found(&e) {
                anyhow::anyhow!(
                    "{} has no {} (is it a Miniguest guest?)",
                    guest_root.display(),
                    files::MANIFEST
                )
            } else {
                e
            }
        })?;
        super::legacy::parse(&text)
            .with_context(|| format!("invalid guest manifest {}", legacy.display()))
    }

    /// A guest with no writable storage keeps nothing across boots.
    pub fn is_stateless(&self) -> bool {
        self.volumes.is_empty() && self.shares.iter().all(|s| s.read_only)
    }

    /// The rules that span fields (each field's own rules hold already).
    /// Each refusal names the field, as `volumes[0].name`.
    fn check(&self) -> Result<()> {
        if self.memory_mib == 0 {
            bail!("memoryMiB: must be positive");
        }
        if self.vcpus == 0 {
            bail!("vcpus: must be positive");
        }
        for (i, param) in self.kernel_params.iter().enumerate() {
            plain_text(param).map_err(|e| anyhow::anyhow!("kernelParams[{i}]: {e}"))?;
        }
        // Run in the guest only, but shown on the host's terminal.
        for (i, word) in self.ready_command.iter().flatten().enumerate() {
            plain_text(word).map_err(|e| anyhow::anyhow!("readyCommand[{i}]: {e}"))?;
        }
        for (i, name) in self.credentials.iter().enumerate() {
            if self.credentials[..i].contains(name) {
                bail!("credentials[{i}]: {:?} is listed twice", name.as_str());
            }
        }
        if self.ready_command.as_ref().is_some_and(Vec::is_empty) {
            bail!("readyCommand: must name a program");
        }
        // Share tags and volume names share one namespace: the virtio
        // serials and tags a guest sees.
        let mut names: Vec<(String, &str)> = Vec::new();
        for (i, share) in self.shares.iter().enumerate() {
            names.push((format!("shares[{i}].tag"), share.tag.as_str()));
        }
        for (i, volume) in self.volumes.iter().enumerate() {
            names.push((format!("volumes[{i}].name"), volume.name.as_str()));
            volume
                .size_bytes()
                .with_context(|| format!("volumes[{i}].sizeMiB"))?;
        }
        for (i, (field, name)) in names.iter().enumerate() {
            if names[..i].iter().any(|(_, n)| n == name) {
                bail!("{field}: {name:?} is used twice (share tags and volume names share one namespace)");
            }
        }
        Ok(())
    }
}

impl Volume {
    /// The image size in bytes; refused rather than wrapped when it
    /// overflows.
    pub fn size_bytes(&self) -> Result<u64> {
        match self.size_mib.checked_mul(1024 * 1024) {
            Some(0) => bail!("must be positive"),
            Some(bytes) => Ok(bytes),
            None => bail!("{} MiB does not fit in a byte count", self.size_mib),
        }
    }
}

/// Reads a file the guest supplied, refusing anything but a regular file
/// of at most `MAX_MANIFEST_BYTES`.
fn read_bounded(path: &Path) -> Result<String> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        bail!("{} is not a regular file", path.display());
    }
    let mut text = String::new();
    file.take(MAX_MANIFEST_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if text.len() as u64 > MAX_MANIFEST_BYTES {
        bail!(
            "{} is larger than {MAX_MANIFEST_BYTES} bytes",
            path.display()
        );
    }
    Ok(text)
}

/// A guest manifest is a few hundred bytes; this bounds what a hostile one
/// can make the host read.
pub const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;

fn is_not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound)
}

/// serde_json's own messages say where, not what: this one names the field
/// (`volumes[0].sizeMiB: invalid type ...`).
pub(super) fn deserialize_naming_field<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            anyhow::anyhow!("{inner}")
        } else {
            anyhow::anyhow!("{path}: {inner}")
        }
    })
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

    /// A guest names the credentials it expects, never where the host
    /// reads them from.
    #[test]
    fn credentials_are_names_only() {
        let m =
            Manifest::parse(r#"{"version":1,"guestType":"qemu","credentials":["ssh-host-key"]}"#)
                .unwrap();
        assert_eq!(m.credentials[0], "ssh-host-key");
        for (bad, field) in [
            (
                r#"["/etc/shadow"]"#,
                "credentials[0]: \"/etc/shadow\" is not a credential name",
            ),
            (r#"["../shadow"]"#, "credentials[0]"),
            (
                r#"[{"name":"a","source":"/etc/shadow"}]"#,
                "credentials[0]: invalid type",
            ),
            (r#"{"a":"/etc/shadow"}"#, "credentials: invalid type"),
            (r#"["a","a"]"#, "credentials[1]: \"a\" is listed twice"),
        ] {
            let json = format!(r#"{{"version":1,"guestType":"qemu","credentials":{bad}}}"#);
            let e = format!("{:#}", Manifest::parse(&json).unwrap_err());
            assert!(e.starts_with(field), "{bad}: {e}");
        }
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

    fn refusal(body: &str) -> String {
        let json = format!(r#"{{"version":1,"guestType":"qemu",{body}}}"#);
        format!("{:#}", Manifest::parse(&json).unwrap_err())
    }

    #[test]
    fn type_errors_name_the_field() {
        assert!(refusal(r#""memoryMiB":"lots""#).starts_with("memoryMiB: invalid type"));
        let e = refusal(r#""volumes":[{"name":"v","mountPoint":"/v","sizeMiB":-1}]"#);
        assert!(e.starts_with("volumes[0].sizeMiB: invalid value"), "{e}");
    }

    #[test]
    fn hostile_values_are_refused_with_their_field() {
        let cases = [
            (
                r#""interfaces":[{"type":"bridge","source":"br0","mac":"52:54:00:00:00:01\nlxc.hook.pre-start = /bin/sh"}]"#,
                "interfaces[0]: mac:",
            ),
            (
                r#""interfaces":[{"type":"bridge","source":"br0\nlxc.hook.pre-start=x"}]"#,
                "interfaces[0]: source:",
            ),
            (
                r#""interfaces":[{"type":"bridge"}]"#,
                "interfaces[0]: source: a bridge interface needs one",
            ),
            (
                r#""interfaces":[{"type":"user","source":"br0"}]"#,
                "interfaces[0]: source: a user interface takes no source",
            ),
            (
                r#""kernelParams":["quiet\nMINIGUEST_DOMAIN_XML"]"#,
                "kernelParams[0]:",
            ),
            (
                r#""volumes":[{"name":"v","mountPoint":"/v","sizeMiB":17592186044416}]"#,
                "volumes[0].sizeMiB: 17592186044416 MiB does not fit",
            ),
            (
                r#""volumes":[{"name":"v","mountPoint":"/../../etc","sizeMiB":1}]"#,
                "volumes[0].mountPoint:",
            ),
            (
                r#""volumes":[{"name":"v","mountPoint":"/","sizeMiB":1}]"#,
                "volumes[0].mountPoint: \"/\" must not be the guest's root",
            ),
            (
                r#""volumes":[{"name":"v","mountPoint":"//","sizeMiB":1}]"#,
                "must not be the guest's root",
            ),
            (
                r#""shares":[{"tag":"t","source":"/srv/../etc","mountPoint":"/x"}]"#,
                "shares[0].source:",
            ),
            (
                r#""shares":[{"tag":"t","source":"relative","mountPoint":"/x"}]"#,
                "shares[0].source:",
            ),
            (
                r#""shares":[{"tag":"t","source":"/srv","mountPoint":"/x"}],"volumes":[{"name":"t","mountPoint":"/y","sizeMiB":1}]"#,
                "volumes[0].name: \"t\" is used twice",
            ),
        ];
        for (body, want) in cases {
            let e = refusal(body);
            assert!(e.contains(want), "{body}: got {e:?}, want {want:?}");
            assert!(!e.contains('\n'), "one line: {e:?}");
        }
    }

    #[test]
    fn a_manifest_that_is_not_a_regular_file_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join(files::MANIFEST)).unwrap();
        let e = format!("{:#}", Manifest::load(dir.path()).unwrap_err());
        assert!(e.contains("not a regular file"), "{e}");
        std::fs::remove_file(dir.path().join(files::MANIFEST)).unwrap();
        let big = format!(
            r#"{{"version":1,"guestType":"lxc","kernelParams":["{}"]}}"#,
            "x".repeat(MAX_MANIFEST_BYTES as usize)
        );
        std::fs::write(dir.path().join(files::MANIFEST), big).unwrap();
        let e = format!("{:#}", Manifest::load(dir.path()).unwrap_err());
        assert!(e.contains("larger than"), "{e}");
    }

    #[test]
    fn legacy_config_is_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(files::LEGACY_MANIFEST),
            r#"{"enable":true,"guestType":"qemu","qemu":{"fsType":"virtiofs"}}"#,
        )
        .unwrap();
        let m = Manifest::load(dir.path()).unwrap();
        assert_eq!(m.guest_type, GuestType::Qemu);
        assert_eq!(m.store_fs, ShareFs::Virtiofs);
    }
}
