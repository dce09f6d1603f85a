//! LXC: a container with an empty root owned by the mapped root user, the
//! store and the guest's `boot/` bind-mounted read-only (idmapped views
//! where the host can make them), and `/boot/init` as its init. Defined
//! with LXC's config file, run with LXC's own tools.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use super::capabilities::{Capabilities, VolumeForm};
use super::container::idmap::IdMap;
use super::container::{self, idmapped};
use super::credentials;
use super::exec::{run_local, ExecIo, ExecOutcome, ExecRequest};
use super::host::{find_program, path_str, run_checked};
use super::store_view::{self, StoreView};
use super::{Backend, Change, Console, GuestSpec, Kind, Policy, SiteOptions, State};
use crate::contract::{files, GuestType, InterfaceType, Link};
use crate::formats::lxc::LxcConfig;
use crate::guest::GuestName;

pub const CAPABILITIES: Capabilities = Capabilities {
    guest_type: GuestType::Lxc,
    links: &[InterfaceType::Bridge],
    port_forwards: false,
    volumes: VolumeForm::Directory,
    exec_through_agent: false,
};

/// Where LXC keeps containers (`lxc-create -P`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Location {
    pub lxcpath: PathBuf,
}

impl Location {
    pub fn from_options(options: &SiteOptions) -> Location {
        Location {
            lxcpath: options.lxcpath.clone().unwrap_or_else(default_lxcpath),
        }
    }
}

/// The host pid of a running container's init.
pub fn init_pid(lxcpath: &Path, name: &GuestName) -> Result<u32> {
    let out = Command::new("lxc-info")
        .arg("-P")
        .arg(lxcpath)
        .args(["-n", name.as_str(), "-p", "-H"])
        .stdin(std::process::Stdio::null())
        .output()
        .context("cannot run lxc-info")?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .with_context(|| format!("container {name} is not running"))
}

pub fn default_lxcpath() -> PathBuf {
    Command::new("lxc-config")
        .arg("lxc.lxcpath")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| PathBuf::from(s.trim()))
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| PathBuf::from("/var/lib/lxc"))
}

/// LXC's shipped config snippets (common.conf, userns.conf), wherever this
/// LXC was installed.
fn lxc_config_dir() -> Option<PathBuf> {
    let start = find_program("lxc-start", &[])?;
    let dir = start.parent()?.parent()?.join("share/lxc/config");
    dir.join("common.conf").is_file().then_some(dir)
}

/// One container: the model its config and scripts are rendered from.
pub struct Container<'a> {
    pub spec: &'a GuestSpec,
    pub lxcpath: PathBuf,
    /// None only when the user explicitly accepted an unmapped root.
    pub idmap: Option<IdMap>,
    /// The map the store and `/boot` are shown through (idmapped views the
    /// hook mounts), or None for plain read-only binds.
    pub program_view: Option<IdMap>,
    /// Start the container when the host boots (`lxc.start.auto`).
    pub autostart: bool,
}

impl Container<'_> {
    pub fn dir(&self) -> PathBuf {
        self.lxcpath.join(self.spec.name.as_str())
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir().join("rootfs")
    }

    pub fn config(&self) -> Result<String> {
        let spec = self.spec;
        let mut c = LxcConfig::default();
        c.comment(&format!("LXC container for Miniguest guest {}", spec.name))?;
        if let Some(dir) = lxc_config_dir() {
            c.set("lxc.include", path_str(&dir.join("common.conf"))?)?;
            if self.idmap.is_some() {
                c.set("lxc.include", path_str(&dir.join("userns.conf"))?)?;
            }
        }
        c.set("lxc.uts.name", &spec.name)?;
        c.set(
            "lxc.rootfs.path",
            format!("dir:{}", path_str(&self.rootfs())?),
        )?;
        match self.idmap {
            Some(map) => {
                c.set("lxc.idmap", format!("u 0 {} {}", map.uid_start, map.count))?;
                c.set("lxc.idmap", format!("g 0 {} {}", map.gid_start, map.count))?;
            }
            None => c.comment(
                "WARNING: root is not mapped; this guest can write to the host's Nix store",
            )?,
        }
        let (store, boot) = match self.program_view {
            Some(_) => {
                let dir = idmapped::lxc_view_dir(spec.name.as_str());
                (dir.join("store"), dir.join("boot"))
            }
            None => (spec.store_dir.clone(), spec.boot_dir()),
        };
        match spec.store_view {
            StoreView::Full => {
                c.mount_entry(path_str(&store)?, "nix/store", "ro,bind,create=dir")?
            }
            // The view the hook builds (from the idmapped store view, if
            // any) with every bind in it; read-only when the container's
            // namespace copies it, and locked so.
            StoreView::Closure => c.mount_entry(
                path_str(&store_view::view_dir(&spec.name))?,
                "nix/store",
                "ro,rbind,create=dir",
            )?,
        }
        c.mount_entry(path_str(&boot)?, files::BOOT_DIR, "ro,bind,create=dir")?;
        for volume in &spec.manifest.volumes {
            c.mount_entry(
                path_str(&spec.volume_directory(volume))?,
                volume.mount_point.relative(),
                "rw,bind,create=dir",
            )?;
        }
        for share in &spec.manifest.shares {
            let mode = if share.read_only { "ro" } else { "rw" };
            c.mount_entry(
                share.source.as_str(),
                share.mount_point.relative(),
                &format!("{mode},bind,create=dir"),
            )?;
        }
        if !spec.credentials.is_empty() {
            // systemd's container interface: PID 1 imports the credentials
            // in the directory $CREDENTIALS_DIRECTORY names, as from
            // systemd-nspawn. The directory (staged by the hook) is bound
            // read-only into a /run of the container's own, which systemd
            // then keeps rather than mounting over it.
            c.mount_fs(
                "tmpfs",
                "run",
                "tmpfs",
                "rw,nosuid,nodev,mode=755,create=dir",
            )?;
            c.mount_entry(
                path_str(&credentials::staging_dir(&spec.name))?,
                credentials::CONTAINER_DIR.trim_start_matches('/'),
                "ro,bind,nosuid,nodev,noexec,create=dir",
            )?;
            c.set(
                "lxc.environment",
                format!("CREDENTIALS_DIRECTORY={}", credentials::CONTAINER_DIR),
            )?;
        }
        c.set("lxc.init.cmd", format!("/{}", files::INIT))?;
        // A NixOS guest's init is systemd: SIGRTMIN+3 shuts it down (LXC's
        // default, SIGPWR, only starts sigpwr.target).
        c.set("lxc.signal.halt", "SIGRTMIN+3")?;
        if self.idmap.is_some() {
            // Raw I/O is the host's alone, whatever a mapped root holds;
            // without the capability systemd skips what needs it (mounting
            // debugfs, which a user namespace may not), as under nspawn,
            // rather than failing it.
            c.set("lxc.cap.drop", "sys_rawio")?;
        }
        if spec.interfaces.is_empty() {
            c.set("lxc.net.0.type", "empty")?;
        }
        for (i, iface) in spec.interfaces.iter().enumerate() {
            // The capability check lets only bridges through.
            if let Link::Bridge(br) = &iface.link {
                c.set(&format!("lxc.net.{i}.type"), "veth")?;
                c.set(&format!("lxc.net.{i}.link"), br)?;
                c.set(&format!("lxc.net.{i}.flags"), "up")?;
            }
            if let Some(mac) = &iface.mac {
                c.set(&format!("lxc.net.{i}.hwaddr"), mac)?;
            }
        }
        if let Some(log) = &spec.console_log {
            c.set("lxc.console.logfile", path_str(log)?)?;
        }
        if self.autostart {
            c.set("lxc.start.auto", 1)?;
        }
        // LXC appends the container's name, the section and the hook type.
        // With idmapped views the hook mounts them before the container's
        // namespaces are made, and unmounts them after it stopped.
        if let Some(hook) = &spec.hook {
            let hook = match self.program_view {
                Some(map) => format!("{hook} --idmapped-view {map}"),
                None => hook.clone(),
            };
            c.set("lxc.hook.pre-start", format!("{hook} started"))?;
            c.set("lxc.hook.post-stop", format!("{hook} stopped"))?;
        }
        Ok(c.finish())
    }

    /// Host directories that must exist (owned by the mapped root).
    fn directories(&self) -> Vec<PathBuf> {
        let mut dirs = vec![self.rootfs()];
        dirs.extend(container::volume_directories(self.spec));
        dirs
    }

    /// A shell script doing what `define` does, with LXC's own tools.
    pub fn script(&self) -> Result<String> {
        use crate::formats::shell::join;
        let config = self.config()?;
        // lxc-create wants the root directory to exist already.
        let mut s = String::from("set -e\n");
        s.push_str(&container::directories_script(
            &self.directories(),
            Some(container::owner(self.idmap)),
        )?);
        // The config travels as one quoted word, never as a here-document
        // whose delimiter a value could contain.
        s.push_str(&format!(
            "printf '%s' {} | ",
            crate::formats::shell::quote(&config)
        ));
        s.push_str(&join(&[
            "lxc-create".into(),
            "-P".into(),
            path_str(&self.lxcpath)?.into(),
            "-n".into(),
            self.spec.name.to_string(),
            "-t".into(),
            "none".into(),
            "-f".into(),
            "/dev/stdin".into(),
        ]));
        s.push('\n');
        Ok(s)
    }

    /// Creates the container, or rewrites the configuration of the one of
    /// that name (read at its next start). Says which it did.
    pub fn define(&self) -> Result<Change> {
        let config = self.config()?;
        let dir = self.dir();
        let config_path = dir.join("config");
        if dir.symlink_metadata().is_ok() {
            let old = std::fs::read_to_string(&config_path).with_context(|| {
                format!("{} exists but has no readable LXC config", dir.display())
            })?;
            let change = if old == config {
                Change::Unchanged
            } else {
                crate::fs::replace_file(&config_path, config.as_bytes())?;
                Change::Updated
            };
            self.prepare_directories()?;
            return Ok(change);
        }
        std::fs::create_dir_all(&self.lxcpath)
            .with_context(|| format!("cannot create {}", self.lxcpath.display()))?;
        std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let result = self.populate(&dir, &config);
        if result.is_err() {
            // Leave no half-defined container behind.
            let _ = std::fs::remove_dir_all(&dir);
        }
        result.map(|()| Change::Defined)
    }

    fn populate(&self, dir: &Path, config: &str) -> Result<()> {
        crate::fs::replace_file(&dir.join("config"), config.as_bytes())?;
        self.prepare_directories()
    }

    fn prepare_directories(&self) -> Result<()> {
        container::prepare_directories(&self.directories(), container::owner(self.idmap))
    }
}

/// The LXC backend at one lxcpath.
pub struct Lxc {
    at: Location,
    policy: Policy,
    idmap: Option<IdMap>,
}

impl Lxc {
    pub fn new(at: Location, policy: Policy) -> Result<Lxc> {
        Ok(Lxc {
            idmap: container::root_map(policy)?,
            at,
            policy,
        })
    }

    /// Why the program cannot be idmapped for this container, if it cannot.
    fn program_view_error(&self, spec: &GuestSpec, map: IdMap) -> Option<String> {
        if spec.hook.is_none() {
            return Some("no hook to mount the views".into());
        }
        idmapped::program_error(spec, map)
    }

    pub fn container<'a>(&self, spec: &'a GuestSpec) -> Container<'a> {
        Container {
            spec,
            lxcpath: self.at.lxcpath.clone(),
            idmap: self.idmap,
            program_view: self
                .idmap
                .filter(|map| self.program_view_error(spec, *map).is_none()),
            autostart: self.policy.autostart,
        }
    }

    fn tool(&self, tool: &str, name: &GuestName, extra: &[&str]) -> Command {
        let mut cmd = Command::new(tool);
        cmd.arg("-P")
            .arg(&self.at.lxcpath)
            .args(["-n", name.as_str()])
            .args(extra)
            .stdin(std::process::Stdio::null());
        cmd
    }

    fn run(&self, tool: &str, name: &GuestName, extra: &[&str]) -> Result<std::process::Output> {
        self.tool(tool, name, extra)
            .output()
            .with_context(|| format!("cannot run {tool}"))
    }

    fn checked(&self, tool: &str, name: &GuestName, extra: &[&str]) -> Result<()> {
        run_checked(
            &mut self.tool(tool, name, extra),
            &format!("{tool} for container {name}"),
        )
    }

    fn is_defined(&self, name: &GuestName) -> bool {
        self.at.lxcpath.join(name.as_str()).join("config").exists()
    }
}

impl Backend for Lxc {
    fn kind(&self) -> Kind {
        Kind::Lxc
    }

    fn location(&self) -> super::Location {
        super::Location::Lxc(self.at.clone())
    }

    fn caveats(&self, spec: &GuestSpec) -> Result<Vec<String>> {
        let why = self.idmap.and_then(|m| self.program_view_error(spec, m));
        Ok(container::caveats(self.idmap, why))
    }

    fn definition(&self, spec: &GuestSpec) -> Result<String> {
        self.container(spec).config()
    }

    fn command(&self, spec: &GuestSpec) -> Result<String> {
        self.container(spec).script()
    }

    fn define(&self, spec: &GuestSpec) -> Result<Change> {
        self.container(spec).define()
    }

    fn undefine(&self, name: &GuestName) -> Result<()> {
        self.checked("lxc-destroy", name, &[])
    }

    fn start(&self, name: &GuestName) -> Result<()> {
        self.checked("lxc-start", name, &[])
    }

    fn stop(&self, name: &GuestName, force: bool, timeout: Duration) -> Result<()> {
        if self.state(name)? != State::Running {
            return Ok(());
        }
        let secs = timeout.as_secs().max(1).to_string();
        let args: Vec<&str> = if force {
            vec!["-k"]
        } else {
            vec!["-t", &secs, "--nokill"]
        };
        // lxc-stop waits itself; its verdict is read from the state.
        let since = std::time::Instant::now();
        let _ = self.run("lxc-stop", name, &args)?;
        super::wait_until_stopped(self, name, since, timeout)
    }

    fn state(&self, name: &GuestName) -> Result<State> {
        if !self.is_defined(name) {
            return Ok(State::Undefined);
        }
        let out = self.run("lxc-info", name, &["-s"])?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(
            if text.contains("RUNNING") || text.contains("STOPPING") || text.contains("STARTING") {
                State::Running
            } else {
                State::Stopped
            },
        )
    }

    /// `lxc-attach`, in the container's namespaces, with the guest's
    /// environment rather than this one's.
    fn exec(&self, name: &GuestName, request: &ExecRequest, io: ExecIo) -> Result<ExecOutcome> {
        let mut cmd = Command::new("lxc-attach");
        cmd.arg("-P")
            .arg(&self.at.lxcpath)
            .args(["-n", name.as_str(), "--clear-env"]);
        for var in request.env() {
            cmd.args(["--set-var", &var]);
        }
        if io == ExecIo::Inherit {
            cmd.args(["--keep-var", "TERM"]);
        }
        cmd.arg("--").args(&request.argv);
        run_local(cmd, request, io)
    }

    fn console(&self, name: &GuestName) -> Result<Console> {
        Ok(Console {
            argv: vec![
                "lxc-console".into(),
                "-P".into(),
                path_str(&self.at.lxcpath)?.into(),
                "-n".into(),
                name.to_string(),
                "-t".into(),
                "0".into(),
            ],
            detach: "Ctrl+a q",
        })
    }

    /// One `lxc-ls` for all: `status` asks about many containers.
    fn states(&self, names: &[GuestName]) -> Result<Vec<State>> {
        let out = Command::new("lxc-ls")
            .arg("-P")
            .arg(&self.at.lxcpath)
            .args(["--running", "-1"])
            .stdin(std::process::Stdio::null())
            .output()
            .context("cannot run lxc-ls")?;
        if !out.status.success() {
            return names.iter().map(|n| self.state(n)).collect();
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let running: std::collections::HashSet<&str> = text.lines().map(str::trim).collect();
        Ok(names
            .iter()
            .map(|name| {
                if !self.is_defined(name) {
                    State::Undefined
                } else if running.contains(name.as_str()) {
                    State::Running
                } else {
                    State::Stopped
                }
            })
            .collect())
    }
}
