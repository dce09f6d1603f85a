//! Hypervisor backends: each turns a guest's manifest into configuration for
//! one hypervisor. None of them copies anything into the guest: the host's
//! store and the guest's `boot/` are shared read-only.

pub mod exposure;
pub mod idmap;
pub mod idmapped;
pub mod libvirt;
pub mod lifecycle;
pub mod lxc;
pub mod nspawn;
pub mod qemu;

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::guest_name::GuestName;
use crate::layout::{Entry, Layout};
use crate::manifest::{layout as files, Interface, Link, Manifest, Volume};
use crate::store_path::store_dir;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum VirtType {
    Kvm,
    Qemu,
}

/// How a guest is to be configured, beyond its manifest: what `create` and
/// `run` were told. Recorded with a defined guest, so that later commands
/// can tell whether its definition is still what `create` would write.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpecOptions {
    pub memory: Option<u64>,
    pub vcpus: Option<u32>,
    pub virt_type: Option<VirtType>,
    pub network: Option<String>,
    pub state_dir: PathBuf,
    pub console_log: Option<PathBuf>,
    pub allow_share: Vec<PathBuf>,
}

/// Everything a backend needs to know about one guest.
#[derive(Debug, Clone)]
pub struct GuestSpec {
    pub name: GuestName,
    /// `GUESTS_DIR/NAME`: always reached through the link, so an upgrade or
    /// rollback takes effect at the next boot without redefining anything.
    pub root: PathBuf,
    pub store_dir: PathBuf,
    pub manifest: Manifest,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub virt_type: VirtType,
    pub interfaces: Vec<Interface>,
    /// Neither `--network` nor the manifest said: the backend's default
    /// network applies, filled in by `with_network`.
    pub default_network: bool,
    /// Host directory holding this guest's declared volumes.
    pub volume_dir: PathBuf,
    pub console_log: Option<PathBuf>,
    /// `miniguest-virtiofsd`, when installed: what serves read-only
    /// virtiofs shares.
    pub read_only_virtiofsd: Option<PathBuf>,
    /// A shell command a hypervisor runs as `COMMAND started|stopped NAME …`
    /// when the guest starts and after it stops, so that what it booted is
    /// kept as a GC root however it was started (`miniguest … hook`).
    pub hook: Option<String>,
}

impl GuestSpec {
    pub fn resolve(layout: &Layout, name: &GuestName, opts: &SpecOptions) -> Result<Self> {
        match layout.entry(name)? {
            Entry::Imperative | Entry::Declarative(_) => {}
            Entry::Missing => bail!("guest {name} is not installed"),
            Entry::Foreign => bail!("{} is not a Miniguest guest", layout.link(name).display()),
        }
        let root = layout.link(name);
        let manifest = crate::output::inspect(&root)?;
        // --network, else the manifest's; neither: the backend's default,
        // chosen where the backend is (see `with_network`).
        let (interfaces, default_network) = match (&opts.network, &manifest.interfaces) {
            (Some(spec), _) => (parse_network(spec)?, false),
            (None, Some(list)) => (list.clone(), false),
            (None, None) => (vec![], true),
        };
        let spec = GuestSpec {
            name: name.clone(),
            store_dir: store_dir(),
            memory_mib: opts.memory.unwrap_or(manifest.memory_mib),
            vcpus: opts.vcpus.unwrap_or(manifest.vcpus),
            virt_type: opts.virt_type.unwrap_or_else(default_virt_type),
            interfaces,
            default_network,
            volume_dir: opts.state_dir.join(name.as_str()),
            console_log: opts.console_log.clone(),
            read_only_virtiofsd: helper_program("miniguest-virtiofsd"),
            hook: Some(hook_command(layout)?),
            manifest,
            root,
        };
        exposure::check_shares(&spec, &opts.allow_share)?;
        Ok(spec)
    }

    /// The guest with the backend's default network in place, where none
    /// was asked for.
    pub fn with_network(
        &self,
        default: impl FnOnce() -> Result<Vec<Interface>>,
    ) -> Result<GuestSpec> {
        let mut spec = self.clone();
        if spec.default_network {
            spec.interfaces = default()?;
            spec.default_network = false;
        }
        Ok(spec)
    }

    pub fn kernel(&self) -> PathBuf {
        self.root.join(files::KERNEL)
    }

    pub fn initrd(&self) -> PathBuf {
        self.root.join(files::INITRD)
    }

    pub fn boot_dir(&self) -> PathBuf {
        self.root.join(files::BOOT_DIR)
    }

    pub fn cmdline(&self) -> String {
        self.manifest.kernel_params.join(" ")
    }

    pub fn volume_image(&self, volume: &Volume) -> PathBuf {
        self.volume_dir.join(format!("{}.img", volume.name))
    }

    /// Volumes for containers are directories rather than images.
    pub fn volume_directory(&self, volume: &Volume) -> PathBuf {
        self.volume_dir.join(&volume.name)
    }

    /// Creates missing volume images as sparse files; existing ones (the
    /// guest's state) are never touched.
    pub fn create_volume_images(&self) -> Result<()> {
        for volume in &self.manifest.volumes {
            let path = self.volume_image(volume);
            if path.exists() {
                continue;
            }
            std::fs::create_dir_all(&self.volume_dir)
                .with_context(|| format!("cannot create {}", self.volume_dir.display()))?;
            let size = volume.size_bytes()?;
            // The guest's state is nobody else's business: owner-only. libvirt
            // hands the image to its QEMU user itself when it starts the guest.
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            file.set_len(size)?;
            drop(file);
            // Formatted here, not in the guest: NixOS's scripted stage 1
            // mounts /var and the like but never formats them.
            if let Err(e) = format_volume(volume, &path) {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Shell lines doing what `create_volume_images` does, for printed
    /// commands: create missing images, never touch existing ones.
    pub fn volume_setup_script(&self) -> Result<String> {
        use crate::formats::shell::quote;
        let mut script = String::new();
        if self.manifest.volumes.is_empty() {
            return Ok(script);
        }
        script.push_str(&format!(
            "mkdir -p {}\n",
            quote(path_str(&self.volume_dir)?)
        ));
        for volume in &self.manifest.volumes {
            let image = quote(path_str(&self.volume_image(volume))?).into_owned();
            let mkfs = crate::formats::shell::join(&mkfs_argv(volume, &self.volume_image(volume))?);
            script.push_str(&format!(
                "[ -e {image} ] || {{ (umask 077 && truncate -s {} {image}) && {mkfs}; }}\n",
                volume.size_bytes()?
            ));
        }
        Ok(script)
    }

    pub fn require_vm(&self) -> Result<()> {
        if self.manifest.guest_type != crate::manifest::GuestType::Qemu {
            bail!(
                "guest {} is a container (guestType lxc): it has no kernel to boot; use `miniguest create -t lxc`",
                self.name
            );
        }
        Ok(())
    }
}

fn mkfs_argv(volume: &Volume, image: &Path) -> Result<Vec<String>> {
    Ok(vec![
        format!("mkfs.{}", volume.fs_type),
        "-q".into(),
        path_str(image)?.to_owned(),
    ])
}

fn format_volume(volume: &Volume, image: &Path) -> Result<()> {
    let argv = mkfs_argv(volume, image)?;
    let out = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("cannot run {} to format volume {}", argv[0], volume.name))?;
    if !out.status.success() {
        bail!(
            "{} could not format volume {}: {}",
            argv[0],
            volume.name,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// What `create --define` did to the hypervisor's definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defined {
    Defined,
    Updated,
    Unchanged,
}

impl Defined {
    pub fn parse(word: &str) -> Result<Self> {
        match word {
            "defined" => Ok(Defined::Defined),
            "updated" => Ok(Defined::Updated),
            "unchanged" => Ok(Defined::Unchanged),
            other => bail!("unexpected answer {other:?} from the backend"),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Defined::Defined => "defined",
            Defined::Updated => "updated",
            Defined::Unchanged => "unchanged",
        }
    }
}

/// A directory shared with the guest over virtio (9p or virtiofs).
pub struct Mount {
    pub source: String,
    pub tag: String,
    pub read_only: bool,
}

/// The two read-only program shares, then the manifest's own shares.
pub fn mounts(spec: &GuestSpec) -> Result<Vec<Mount>> {
    let mut mounts = vec![
        Mount {
            source: path_str(&spec.store_dir)?.to_owned(),
            tag: files::STORE_TAG.to_owned(),
            read_only: true,
        },
        Mount {
            source: path_str(&spec.boot_dir())?.to_owned(),
            tag: files::BOOT_TAG.to_owned(),
            read_only: true,
        },
    ];
    mounts.extend(spec.manifest.shares.iter().map(|share| Mount {
        source: share.source.clone(),
        tag: share.tag.clone(),
        read_only: share.read_only,
    }));
    Ok(mounts)
}

/// Shell lines creating a container's host directories, each handed to
/// `owner` (the mapped root) when one is given.
pub fn directories_script(dirs: &[PathBuf], owner: Option<(u64, u64)>) -> Result<String> {
    let mut script = String::new();
    for dir in dirs {
        let dir = crate::formats::shell::quote(path_str(dir)?).into_owned();
        script.push_str(&format!("mkdir -p {dir}\n"));
        if let Some((uid, gid)) = owner {
            // -h: a directory the container can write may hold a link it
            // planted (`usr -> /etc`); chown must not follow it to the host.
            script.push_str(&format!("chown -h {uid}:{gid} {dir}\n"));
        }
    }
    Ok(script)
}

/// What `directories_script` prints, done: creates a container's host
/// directories and hands them to `owner` (the mapped root), never through
/// a link the container may have planted.
pub fn prepare_directories(dirs: &[PathBuf], (uid, gid): (u32, u32)) -> Result<()> {
    for dir in dirs {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        std::os::unix::fs::lchown(dir, Some(uid), Some(gid))
            .with_context(|| format!("cannot give {} to the container's root", dir.display()))?;
    }
    Ok(())
}

/// `none`, `user`, `bridge=BR`, `network=NET`, comma-separated for several.
pub fn parse_network(spec: &str) -> Result<Vec<Interface>> {
    if spec == "none" {
        return Ok(vec![]);
    }
    spec.split(',')
        .map(|part| {
            let (kind, source) = match part.split_once('=') {
                Some((k, v)) => (k, Some(v.to_owned())),
                None => (part, None),
            };
            let link = match (kind, source) {
                ("user", None) => Link::User(vec![]),
                ("bridge", Some(br)) => Link::Bridge(br),
                ("network", Some(net)) => Link::Network(net),
                _ => bail!(
                    "invalid --network {part:?} (expected none, user, bridge=BR or network=NET)"
                ),
            };
            Ok(Interface { link, mac: None })
        })
        .collect()
}

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

fn default_virt_type() -> VirtType {
    if kvm_usable() {
        VirtType::Kvm
    } else {
        VirtType::Qemu
    }
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

pub fn path_str(path: &Path) -> Result<&str> {
    path.to_str()
        .with_context(|| format!("path {} is not valid UTF-8", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_specs() {
        assert!(parse_network("none").unwrap().is_empty());
        let ifs = parse_network("user,bridge=br0").unwrap();
        assert_eq!(ifs[0].link, Link::User(vec![]));
        assert_eq!(ifs[1].link, Link::Bridge("br0".into()));
        assert!(parse_network("bridge").is_err());
        assert!(parse_network("wifi").is_err());
    }
}
