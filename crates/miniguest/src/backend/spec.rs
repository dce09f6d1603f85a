//! `GuestSpec`: everything a backend needs to know about one guest, resolved
//! from the installed output, its manifest and what `create` or `run` was
//! told.

use std::path::PathBuf;

use anyhow::{bail, Result};

use super::credentials::Credential;
use super::host::{default_virt_type, helper_program, hook_command, path_str};
use super::store_view::StoreView;
use crate::contract::{files, output, Interface, Manifest, Volume};
use crate::guest::{Entry, GuestName, Layout};
use crate::nix::store_path::store_dir;

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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    pub state_dir: PathBuf,
    pub console_log: Option<PathBuf>,
    pub allow_share: Vec<PathBuf>,
    /// Each credential the guest expects, with the host file it comes from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<Credential>,
    /// The whole store, or only the guest's closure.
    #[serde(default, skip_serializing_if = "StoreView::is_full")]
    pub store_view: StoreView,
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
    /// The QEMU machine type the user chose (`--machine`); None: the
    /// backend's own choice.
    pub machine: Option<String>,
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
    /// The host's virtiofsd, when found: what serves writable virtiofs
    /// shares (QEMU 8 and later ship none, so a hypervisor left to find
    /// its own may find nothing).
    pub virtiofsd: Option<PathBuf>,
    /// QEMU's qboot firmware, when installed: a direct kernel boot on the
    /// pc machine reaches the kernel sooner with it than with SeaBIOS.
    pub qboot: Option<PathBuf>,
    /// A shell command a hypervisor runs as `COMMAND started|stopped NAME …`
    /// when the guest starts and after it stops, so that what it booted is
    /// kept as a GC root however it was started (`miniguest … hook`).
    pub hook: Option<String>,
    /// The systemd credentials the guest gets, each from its host file.
    pub credentials: Vec<Credential>,
    pub store_view: StoreView,
}

impl GuestSpec {
    /// The installed guest `name`, as `opts` configure it. Its output is
    /// checked again (`contract::output`), and its shares against the
    /// exposure policy.
    pub fn resolve(layout: &Layout, name: &GuestName, opts: &SpecOptions) -> Result<Self> {
        match layout.entry(name)? {
            Entry::Imperative | Entry::Declarative(_) => {}
            Entry::Missing => bail!("guest {name} is not installed"),
            Entry::Foreign => bail!("{} is not a Miniguest guest", layout.link(name).display()),
        }
        let root = layout.link(name);
        let manifest = output::inspect(&root)?;
        // --network, else the manifest's; neither: the backend's default,
        // chosen where the backend is (see `with_network`).
        let (interfaces, default_network) = match (&opts.network, &manifest.interfaces) {
            (Some(spec), _) => (super::network::parse(spec)?, false),
            (None, Some(list)) => (list.clone(), false),
            (None, None) => (vec![], true),
        };
        let spec = GuestSpec {
            memory_mib: opts.memory.unwrap_or(manifest.memory_mib),
            vcpus: opts.vcpus.unwrap_or(manifest.vcpus),
            virt_type: opts.virt_type.unwrap_or_else(default_virt_type),
            machine: opts.machine.as_deref().map(machine_option).transpose()?,
            interfaces,
            default_network,
            volume_dir: opts.state_dir.join(name.as_str()),
            console_log: opts.console_log.clone(),
            hook: Some(hook_command(layout)?),
            ..GuestSpec::builder(name.clone(), manifest)
                .root(root)
                .build()
        };
        super::exposure::check_shares(&spec, &opts.allow_share)?;
        let credentials = super::credentials::resolve(
            name,
            &spec.manifest.credentials,
            &opts.credentials,
            &spec.store_dir,
        )?;
        let spec = GuestSpec {
            credentials,
            store_view: opts.store_view,
            ..spec
        };
        Ok(spec)
    }

    /// A spec for `name` with `manifest` and the host's defaults: the
    /// starting point for tests and tools that have no installed guest.
    pub fn builder(name: GuestName, manifest: Manifest) -> GuestSpecBuilder {
        let interfaces = manifest.interfaces.clone().unwrap_or_default();
        GuestSpecBuilder(GuestSpec {
            root: PathBuf::from(crate::guest::layout::DEFAULT_GUESTS_DIR).join(name.as_str()),
            store_dir: store_dir(),
            memory_mib: manifest.memory_mib,
            vcpus: manifest.vcpus,
            virt_type: VirtType::Qemu,
            machine: None,
            interfaces,
            default_network: false,
            volume_dir: PathBuf::from("/var/lib/miniguest").join(name.as_str()),
            console_log: None,
            read_only_virtiofsd: helper_program("miniguest-virtiofsd"),
            virtiofsd: super::qemu::virtiofsd::binary().ok(),
            qboot: super::host::qboot(),
            hook: None,
            credentials: vec![],
            store_view: StoreView::Full,
            manifest,
            name,
        })
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

    /// Where the hypervisor takes the guest's store from: the store, or
    /// the guest's closure-only view of it.
    pub fn store_source(&self) -> PathBuf {
        match self.store_view {
            StoreView::Full => self.store_dir.clone(),
            StoreView::Closure => super::store_view::view_dir(&self.name),
        }
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

    /// The directories a VM gets over virtio (9p or virtiofs): the two
    /// read-only program shares, then the manifest's own.
    pub fn mounts(&self) -> Result<Vec<Mount>> {
        let mut mounts = vec![
            Mount {
                source: path_str(&self.store_source())?.to_owned(),
                tag: files::STORE_TAG.to_owned(),
                read_only: true,
            },
            Mount {
                source: path_str(&self.boot_dir())?.to_owned(),
                tag: files::BOOT_TAG.to_owned(),
                read_only: true,
            },
        ];
        mounts.extend(self.manifest.shares.iter().map(|share| Mount {
            source: share.source.to_string(),
            tag: share.tag.to_string(),
            read_only: share.read_only,
        }));
        Ok(mounts)
    }

    /// Volumes for containers are directories rather than images.
    pub fn volume_directory(&self, volume: &Volume) -> PathBuf {
        self.volume_dir.join(volume.name.as_str())
    }
}

/// `--machine`: it reaches QEMU's command line and libvirt's XML, so it is
/// one plain word of QEMU's option syntax.
fn machine_option(value: &str) -> Result<String> {
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.,=-".contains(&b))
        && !value.starts_with(['-', ',']);
    if !ok {
        bail!("--machine {value:?}: a machine type is [A-Za-z0-9_.-] with ,OPTION=VALUE pairs");
    }
    Ok(value.to_owned())
}

/// A host directory shared with a VM over virtio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: String,
    pub tag: String,
    pub read_only: bool,
}

/// Builds a `GuestSpec` field by field from `GuestSpec::builder`'s defaults.
pub struct GuestSpecBuilder(GuestSpec);

impl GuestSpecBuilder {
    pub fn root(mut self, root: impl Into<PathBuf>) -> Self {
        self.0.root = root.into();
        self
    }

    pub fn store_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.0.store_dir = dir.into();
        self
    }

    pub fn virt_type(mut self, virt_type: VirtType) -> Self {
        self.0.virt_type = virt_type;
        self
    }

    pub fn interfaces(mut self, interfaces: Vec<Interface>) -> Self {
        self.0.interfaces = interfaces;
        self
    }

    pub fn volume_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.0.volume_dir = dir.into();
        self
    }

    pub fn console_log(mut self, log: Option<PathBuf>) -> Self {
        self.0.console_log = log;
        self
    }

    pub fn read_only_virtiofsd(mut self, program: Option<PathBuf>) -> Self {
        self.0.read_only_virtiofsd = program;
        self
    }

    pub fn virtiofsd(mut self, program: Option<PathBuf>) -> Self {
        self.0.virtiofsd = program;
        self
    }

    pub fn qboot(mut self, firmware: Option<PathBuf>) -> Self {
        self.0.qboot = firmware;
        self
    }

    pub fn hook(mut self, hook: Option<String>) -> Self {
        self.0.hook = hook;
        self
    }

    pub fn build(self) -> GuestSpec {
        self.0
    }
}
