//! systemd-nspawn: the same read-only binds of the store and `boot/` (with
//! `:idmap` where the host can), a private user range and a private
//! network, as one model (`MachineModel`) rendered as a command line or as
//! `.nspawn` settings; defined for `machinectl start` with the settings,
//! the image link machined finds, and a drop-in that roots what the
//! machine boots.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::capabilities::{Capabilities, VolumeForm};
use super::container::idmap::IdMap;
use super::container::{self, idmapped};
use super::exec::{run_local, ExecIo, ExecOutcome, ExecRequest};
use super::host::{path_str, run_checked};
use super::store_view::{self, StoreView};
use super::{Backend, Change, Console, GuestSpec, Kind, Policy, SiteOptions, State};
use crate::contract::{files, GuestType, InterfaceType, Link};
use crate::formats::unit::{command_line, UnitFile};
use crate::guest::GuestName;

pub const CAPABILITIES: Capabilities = Capabilities {
    guest_type: GuestType::Lxc,
    links: &[InterfaceType::Bridge],
    port_forwards: false,
    volumes: VolumeForm::Directory,
    exec_through_agent: false,
};

/// Where a defined nspawn machine's files go.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    /// `.nspawn` settings (`/etc/systemd/nspawn`).
    pub settings_dir: PathBuf,
    /// Machine images machined finds by name (`/var/lib/machines`).
    pub machines_dir: PathBuf,
    /// systemd units, for the drop-in (`/etc/systemd/system`).
    pub units_dir: PathBuf,
}

impl Location {
    /// The directories given, else the host's: NixOS keeps
    /// /etc/systemd/system in the store, so there the definitions go
    /// where systemd reads what is defined at run time (gone at reboot:
    /// the host module's define unit writes them again at every boot).
    pub fn with_defaults(
        settings_dir: Option<PathBuf>,
        machines_dir: PathBuf,
        units_dir: Option<PathBuf>,
        nixos: bool,
    ) -> Location {
        let (settings, units) = if nixos {
            ("/run/systemd/nspawn", "/run/systemd/system")
        } else {
            ("/etc/systemd/nspawn", "/etc/systemd/system")
        };
        Location {
            settings_dir: settings_dir.unwrap_or_else(|| PathBuf::from(settings)),
            machines_dir,
            units_dir: units_dir.unwrap_or_else(|| PathBuf::from(units)),
        }
    }

    pub fn from_options(options: &SiteOptions) -> Location {
        options.nspawn.clone()
    }

    pub fn settings_file(&self, name: &str) -> PathBuf {
        self.settings_dir.join(format!("{name}.nspawn"))
    }

    pub fn image(&self, name: &str) -> PathBuf {
        self.machines_dir.join(name)
    }

    pub fn drop_in_dir(&self, name: &str) -> PathBuf {
        self.units_dir
            .join(format!("systemd-nspawn@{name}.service.d"))
    }
}

/// The host pid of a running machine's init, as machined knows it.
pub fn leader(name: &GuestName) -> Result<u32> {
    let out = Command::new("machinectl")
        .args(["show", name.as_str(), "--property=Leader", "--value"])
        .stdin(std::process::Stdio::null())
        .output()
        .context("cannot run machinectl")?;
    let leader = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    match leader.parse() {
        Ok(pid) if out.status.success() => Ok(pid),
        _ => bail!("machined knows no running machine {name}: is it started with machinectl?"),
    }
}

/// nspawn's bind syntax separates source and target with ':'.
fn bind_escape(path: &str) -> String {
    path.replace('\\', "\\\\").replace(':', "\\:")
}

/// One bind mount, as both `--bind[-ro]=` and `Bind[ReadOnly]=` take it.
pub struct Bind {
    pub source: String,
    pub target: String,
    pub read_only: bool,
    /// Shown with the container's root as the host's (`:idmap`).
    pub idmap: bool,
}

impl Bind {
    fn value(&self) -> String {
        format!(
            "{}:{}{}",
            bind_escape(&self.source),
            bind_escape(&self.target),
            if self.idmap { ":idmap" } else { "" }
        )
    }
}

/// The machine as both renderings see it.
pub struct MachineModel {
    pub name: String,
    pub root: PathBuf,
    pub private_users: Option<IdMap>,
    pub binds: Vec<Bind>,
    pub bridges: Vec<String>,
    pub init: String,
    /// `NAME:PATH`: systemd credentials nspawn reads from the host and
    /// passes to the container's PID 1.
    pub credentials: Vec<String>,
}

/// The machine's empty root; nspawn insists on a `usr/` in it. The dot
/// keeps it apart from volumes, whose names cannot hold one.
pub fn root(spec: &GuestSpec) -> PathBuf {
    spec.volume_dir.join(".nspawn-root")
}

/// The model of a prepared spec. `program_idmap`: whether the store and
/// `/boot` binds are idmapped.
pub fn model(spec: &GuestSpec, map: Option<IdMap>, program_idmap: bool) -> Result<MachineModel> {
    let store = match spec.store_view {
        StoreView::Full => Bind {
            source: path_str(&spec.store_dir)?.to_owned(),
            target: "/nix/store".into(),
            read_only: true,
            idmap: program_idmap,
        },
        // The view the drop-in's hook builds (idmapped already, from an
        // idmapped view of the store), bound with every bind in it: nspawn
        // binds recursively and makes every submount read-only.
        StoreView::Closure => Bind {
            source: path_str(&store_view::view_dir(&spec.name))?.to_owned(),
            target: "/nix/store".into(),
            read_only: true,
            idmap: false,
        },
    };
    let mut binds = vec![
        store,
        Bind {
            source: path_str(&spec.boot_dir())?.to_owned(),
            target: format!("/{}", files::BOOT_DIR),
            read_only: true,
            idmap: program_idmap,
        },
    ];
    for volume in &spec.manifest.volumes {
        binds.push(Bind {
            source: path_str(&spec.volume_directory(volume))?.to_owned(),
            target: volume.mount_point.to_string(),
            read_only: false,
            idmap: false,
        });
    }
    for share in &spec.manifest.shares {
        binds.push(Bind {
            source: share.source.to_string(),
            target: share.mount_point.to_string(),
            read_only: share.read_only,
            idmap: false,
        });
    }
    let bridges = spec
        .interfaces
        .iter()
        .filter_map(|i| match &i.link {
            Link::Bridge(br) => Some(br.to_string()),
            // The capability check lets only bridges through.
            _ => None,
        })
        .collect();
    Ok(MachineModel {
        name: spec.name.to_string(),
        root: root(spec),
        private_users: map,
        binds,
        bridges,
        init: format!("/{}", files::INIT),
        credentials: spec
            .credentials
            .iter()
            .map(|c| Ok(format!("{}:{}", c.name, path_str(&c.source)?)))
            .collect::<Result<_>>()?,
    })
}

impl MachineModel {
    pub fn argv(&self) -> Result<Vec<String>> {
        let mut argv: Vec<String> = vec![
            "systemd-nspawn".into(),
            format!("--machine={}", self.name),
            format!("--directory={}", path_str(&self.root)?),
            "--kill-signal=SIGRTMIN+3".into(),
        ];
        // Without systemd as the host's init there is no machined to
        // register with.
        if !Path::new("/run/systemd/system").exists() {
            argv.extend(["--register=no".into(), "--keep-unit".into()]);
        }
        if let Some(map) = self.private_users {
            // The root is handed to the mapped range by `script`: nspawn's
            // own chown mode only takes ranges aligned to 65536.
            argv.push(format!("--private-users={}:{}", map.uid_start, map.count));
        }
        for bind in &self.binds {
            let flag = if bind.read_only {
                "--bind-ro"
            } else {
                "--bind"
            };
            argv.push(format!("{flag}={}", bind.value()));
        }
        // Always a network namespace of its own: nspawn has no user-mode
        // networking, and sharing the host's network is never the default.
        argv.push("--private-network".into());
        for br in &self.bridges {
            argv.push(format!("--network-bridge={br}"));
        }
        for c in &self.credentials {
            argv.push(format!("--load-credential={c}"));
        }
        argv.push(self.init.clone());
        Ok(argv)
    }

    /// The `.nspawn` settings: what the command line says, for
    /// `machinectl start` (whose unit reads them with --settings=override).
    pub fn settings(&self) -> Result<String> {
        let mut u = UnitFile::default();
        u.comment(&format!(
            "systemd-nspawn settings for Miniguest guest {}",
            self.name
        ))?;
        u.section("Exec")?;
        u.set("Boot", "no")?;
        u.set("Parameters", &self.init)?;
        // A NixOS guest's init is systemd: SIGRTMIN+3 shuts it down, where
        // nspawn would otherwise pass its SIGTERM on (which systemd takes
        // as "re-execute").
        u.set("KillSignal", "SIGRTMIN+3")?;
        match self.private_users {
            Some(map) => u.set("PrivateUsers", format!("{}:{}", map.uid_start, map.count))?,
            None => u.set("PrivateUsers", "no")?,
        }
        for c in &self.credentials {
            u.set("LoadCredential", c)?;
        }
        u.section("Files")?;
        for bind in &self.binds {
            let key = if bind.read_only {
                "BindReadOnly"
            } else {
                "Bind"
            };
            u.set(key, bind.value())?;
        }
        u.section("Network")?;
        u.set("Private", "yes")?;
        u.set("VirtualEthernet", "no")?;
        for br in &self.bridges {
            u.set("Bridge", br)?;
        }
        Ok(u.finish())
    }
}

/// The host directories a machine needs, handed to its mapped root: its
/// root, `usr/` (which nspawn insists on), `nix/` (where a NixOS guest's
/// Nix keeps its database and profiles beside the store nspawn binds in)
/// and its volumes.
fn directories(spec: &GuestSpec) -> Vec<PathBuf> {
    let mut dirs = vec![root(spec), root(spec).join("usr"), root(spec).join("nix")];
    dirs.extend(container::volume_directories(spec));
    dirs
}

/// The machine as a shell script: its directories, handed to the mapped
/// root, then systemd-nspawn.
pub fn script(spec: &GuestSpec, model: &MachineModel) -> Result<String> {
    let owner = model
        .private_users
        .map(|m| (m.uid_start as u32, m.gid_start as u32));
    let mut s = container::directories_script(&directories(spec), owner)?;
    s.push_str(&crate::formats::shell::join(&model.argv()?));
    s.push('\n');
    Ok(s)
}

/// systemd's version, from `systemd-nspawn --version` ("systemd 252 (…)").
fn nspawn_version() -> Option<u32> {
    static VERSION: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    *VERSION.get_or_init(|| {
        let out = Command::new("systemd-nspawn")
            .arg("--version")
            .stdin(std::process::Stdio::null())
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    })
}

/// The nspawn backend: machines `machinectl start` runs
/// (systemd-nspawn@NAME.service), defined at one location.
pub struct Nspawn {
    at: Location,
    policy: Policy,
    idmap: Option<IdMap>,
}

impl Nspawn {
    pub fn new(at: Location, policy: Policy) -> Result<Nspawn> {
        Ok(Nspawn {
            idmap: container::root_map(policy)?,
            at,
            policy,
        })
    }

    /// Why the program cannot be idmapped for this machine, if it cannot:
    /// `:idmap` binds need systemd 250, a kernel and file systems that
    /// allow them. nspawn makes the binds before it enters the user
    /// namespace, so their read-only flag is locked.
    fn program_view_error(&self, spec: &GuestSpec, map: IdMap) -> Option<String> {
        match nspawn_version() {
            Some(v) if v >= 250 => {}
            Some(v) => {
                return Some(format!(
                    "systemd-nspawn {v} has no idmapped binds (250 and later)"
                ))
            }
            None => return Some("cannot tell systemd-nspawn's version".into()),
        }
        idmapped::program_error(spec, map)
    }

    pub fn model(&self, spec: &GuestSpec) -> Result<MachineModel> {
        let program_idmap = self
            .idmap
            .is_some_and(|map| self.program_view_error(spec, map).is_none());
        model(spec, self.idmap, program_idmap)
    }

    fn checked(&self, verb: &str, name: &GuestName) -> Result<()> {
        run_checked(
            Command::new("machinectl").args([verb, name.as_str()]),
            &format!("machinectl {verb} {name}"),
        )
    }
}

impl Backend for Nspawn {
    fn kind(&self) -> Kind {
        Kind::Nspawn
    }

    fn location(&self) -> super::Location {
        super::Location::Nspawn(self.at.clone())
    }

    fn caveats(&self, spec: &GuestSpec) -> Result<Vec<String>> {
        let why = self.idmap.and_then(|m| self.program_view_error(spec, m));
        let mut notes = container::caveats(self.idmap, why);
        if self.policy.autostart {
            notes.push(format!(
                "nspawn machines start with the host once enabled: machinectl enable {}",
                spec.name
            ));
        }
        Ok(notes)
    }

    fn definition(&self, spec: &GuestSpec) -> Result<String> {
        self.model(spec)?.settings()
    }

    fn command(&self, spec: &GuestSpec) -> Result<String> {
        script(spec, &self.model(spec)?)
    }

    /// Writes the settings, the image link and the drop-in, or updates them.
    fn define(&self, spec: &GuestSpec) -> Result<Change> {
        let name = spec.name.as_str();
        let settings = self.definition(spec)?;
        let file = self.at.settings_file(name);
        let change = match std::fs::read_to_string(&file) {
            Ok(old) if old == settings => Change::Unchanged,
            Ok(_) => Change::Updated,
            Err(_) => Change::Defined,
        };
        container::prepare_directories(&directories(spec), container::owner(self.idmap))?;
        link_image(&self.at.image(name), &root(spec))?;
        if let Some(hook) = &spec.hook {
            let mut unit = UnitFile::default();
            unit.comment("Miniguest: keep what the machine boots from garbage collection")?;
            unit.section("Service")?;
            for (key, event) in [("ExecStartPre", "started"), ("ExecStopPost", "stopped")] {
                let script = format!("{hook} {event} {name} nspawn");
                unit.set(key, command_line(&["/bin/sh", "-c", &script]))?;
            }
            crate::fs::write_file(
                &self.at.drop_in_dir(name).join("miniguest.conf"),
                unit.finish().as_bytes(),
            )?;
        }
        crate::fs::write_file(&file, settings.as_bytes())?;
        Ok(change)
    }

    fn undefine(&self, name: &GuestName) -> Result<()> {
        let name = name.as_str();
        crate::fs::remove_if_exists(&self.at.settings_file(name))?;
        crate::fs::remove_if_exists(&self.at.image(name))?;
        let drop_in = self.at.drop_in_dir(name);
        crate::fs::remove_if_exists(&drop_in.join("miniguest.conf"))?;
        let _ = std::fs::remove_dir(&drop_in);
        Ok(())
    }

    fn start(&self, name: &GuestName) -> Result<()> {
        self.checked("start", name)
    }

    fn stop(&self, name: &GuestName, force: bool, timeout: Duration) -> Result<()> {
        if self.state(name)? != State::Running {
            return Ok(());
        }
        let since = std::time::Instant::now();
        self.checked(if force { "terminate" } else { "poweroff" }, name)?;
        super::wait_until_stopped(self, name, since, timeout)
    }

    /// The machine's leader, as machined knows it, entered with nsenter
    /// (all its namespaces), the command given the guest's environment.
    fn exec(&self, name: &GuestName, request: &ExecRequest, io: ExecIo) -> Result<ExecOutcome> {
        let leader = leader(name)?.to_string();
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &leader, "-a", "--"])
            .args(&request.argv)
            .env_clear()
            .envs(request.env().iter().filter_map(|v| v.split_once('=')));
        if io == ExecIo::Inherit {
            if let Ok(term) = std::env::var("TERM") {
                cmd.env("TERM", term);
            }
        }
        run_local(cmd, request, io)
    }

    fn console(&self, name: &GuestName) -> Result<Console> {
        Ok(Console {
            argv: vec!["machinectl".into(), "login".into(), name.to_string()],
            detach: "Ctrl+] three times within a second",
        })
    }

    fn state(&self, name: &GuestName) -> Result<State> {
        if !self.at.settings_file(name.as_str()).exists() {
            return Ok(State::Undefined);
        }
        // machined knows only running machines.
        let known = Command::new("machinectl")
            .args(["show", name.as_str()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        Ok(if known {
            State::Running
        } else {
            State::Stopped
        })
    }
}

/// `machines/NAME` -> the root: created if absent, replaced only if it is
/// already a link (ours); anything else there is someone else's.
fn link_image(image: &Path, root: &Path) -> Result<()> {
    match std::fs::read_link(image) {
        Ok(target) if target == root => return Ok(()),
        Ok(_) => std::fs::remove_file(image)?,
        Err(_) if image.symlink_metadata().is_ok() => {
            bail!(
                "{} exists and is not Miniguest's; refusing to replace it",
                image.display()
            )
        }
        Err(_) => {}
    }
    if let Some(parent) = image.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::os::unix::fs::symlink(root, image)
        .with_context(|| format!("cannot create {}", image.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_go_where_systemd_reads_them_on_each_host() {
        let machines = PathBuf::from("/var/lib/machines");
        let debian = Location::with_defaults(None, machines.clone(), None, false);
        assert_eq!(debian.units_dir, Path::new("/etc/systemd/system"));
        assert_eq!(debian.settings_dir, Path::new("/etc/systemd/nspawn"));
        let nixos = Location::with_defaults(None, machines.clone(), None, true);
        assert_eq!(nixos.units_dir, Path::new("/run/systemd/system"));
        assert_eq!(nixos.settings_dir, Path::new("/run/systemd/nspawn"));
        let given = Location::with_defaults(
            Some("/srv/nspawn".into()),
            machines,
            Some("/srv/units".into()),
            true,
        );
        assert_eq!(given.units_dir, Path::new("/srv/units"));
        assert_eq!(given.settings_dir, Path::new("/srv/nspawn"));
    }
}
