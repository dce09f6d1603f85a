//! systemd-nspawn: the same two read-only binds and a private user range,
//! as a command line, or defined for `machinectl start` as a `.nspawn`
//! settings file, the image link machined finds, and a drop-in that roots
//! what the machine boots.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::idmap::IdMap;
use super::idmapped;
use super::lxc::require_container;
use super::{directories_script, path_str, Defined, GuestSpec};
use crate::formats::unit::{command_line, UnitFile};
use crate::manifest::{layout as files, Link};

/// nspawn's bind syntax separates source and target with ':'.
fn bind_escape(path: &str) -> String {
    path.replace('\\', "\\\\").replace(':', "\\:")
}

pub struct Machine<'a> {
    pub spec: &'a GuestSpec,
    pub idmap: Option<IdMap>,
}

impl Machine<'_> {
    /// `:idmap` for the store and `/boot` binds when the container's root is
    /// mapped and they can be idmapped (systemd 250 and later, a kernel and
    /// file systems that allow it): the program then belongs to the
    /// container's root. nspawn makes the binds before it enters the user
    /// namespace, so their read-only flag is locked.
    pub fn program_bind_options(&self) -> &'static str {
        match self.idmap {
            Some(map) if self.program_view_error(map).is_none() => ":idmap",
            _ => "",
        }
    }

    /// Why the program cannot be idmapped for this machine, if it cannot.
    pub fn program_view_error(&self, map: IdMap) -> Option<String> {
        match nspawn_version() {
            Some(v) if v >= 250 => {}
            Some(v) => {
                return Some(format!(
                    "systemd-nspawn {v} has no idmapped binds (250 and later)"
                ))
            }
            None => return Some("cannot tell systemd-nspawn's version".into()),
        }
        idmapped::program_error(self.spec, map)
    }

    /// An empty root; nspawn insists on a `usr/` in it. The dot keeps it
    /// apart from volumes, whose names cannot hold one.
    pub fn root(&self) -> PathBuf {
        self.spec.volume_dir.join(".nspawn-root")
    }

    pub fn argv(&self) -> Result<Vec<String>> {
        require_container(self.spec)?;
        let spec = self.spec;
        let mut argv: Vec<String> = vec![
            "systemd-nspawn".into(),
            format!("--machine={}", spec.name),
            format!("--directory={}", path_str(&self.root())?),
        ];
        // Without systemd as the host's init there is no machined to register with.
        if !std::path::Path::new("/run/systemd/system").exists() {
            argv.extend(["--register=no".into(), "--keep-unit".into()]);
        }
        if let Some(map) = self.idmap {
            // The root is handed to the mapped range by `script`: nspawn's
            // own chown mode only takes ranges aligned to 65536.
            argv.push(format!("--private-users={}:{}", map.uid_start, map.count));
        }
        let idmap = self.program_bind_options();
        argv.push(format!(
            "--bind-ro={}:/nix/store{idmap}",
            bind_escape(path_str(&spec.store_dir)?)
        ));
        argv.push(format!(
            "--bind-ro={}:/{}{idmap}",
            bind_escape(path_str(&spec.boot_dir())?),
            files::BOOT_DIR
        ));
        for volume in &spec.manifest.volumes {
            argv.push(format!(
                "--bind={}:{}",
                bind_escape(path_str(&spec.volume_directory(volume))?),
                bind_escape(&volume.mount_point)
            ));
        }
        for share in &spec.manifest.shares {
            let flag = if share.read_only {
                "--bind-ro"
            } else {
                "--bind"
            };
            argv.push(format!(
                "{flag}={}:{}",
                bind_escape(&share.source),
                bind_escape(&share.mount_point)
            ));
        }
        // Always a network namespace of its own: nspawn has no user-mode
        // networking, and sharing the host's network is never the default.
        argv.push("--private-network".into());
        for iface in &spec.interfaces {
            match &iface.link {
                Link::Bridge(br) => argv.push(format!("--network-bridge={br}")),
                other => bail!(
                    "systemd-nspawn takes bridge=BR interfaces only (not {other:?}); use --network none or bridge=BR"
                ),
            }
        }
        argv.push(format!("/{}", files::INIT));
        Ok(argv)
    }

    pub fn script(&self) -> Result<String> {
        let mut dirs = vec![self.root(), self.root().join("usr")];
        dirs.extend(
            self.spec
                .manifest
                .volumes
                .iter()
                .map(|v| self.spec.volume_directory(v)),
        );
        let owner = self.idmap.map(|m| (m.uid_start, m.gid_start));
        let mut s = directories_script(&dirs, owner)?;
        s.push_str(&crate::formats::shell::join(&self.argv()?));
        s.push('\n');
        Ok(s)
    }
}

/// Where a defined nspawn machine's files go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NspawnDirs {
    /// `.nspawn` settings (`/etc/systemd/nspawn`).
    pub settings: PathBuf,
    /// Machine images machined finds by name (`/var/lib/machines`).
    pub machines: PathBuf,
    /// systemd units, for the drop-in (`/etc/systemd/system`).
    pub units: PathBuf,
}

impl NspawnDirs {
    pub fn settings_file(&self, name: &str) -> PathBuf {
        self.settings.join(format!("{name}.nspawn"))
    }

    pub fn image(&self, name: &str) -> PathBuf {
        self.machines.join(name)
    }

    pub fn drop_in_dir(&self, name: &str) -> PathBuf {
        self.units.join(format!("systemd-nspawn@{name}.service.d"))
    }
}

impl Machine<'_> {
    /// The `.nspawn` settings: what the command line says, for
    /// `machinectl start` (whose unit reads them with --settings=override).
    pub fn settings(&self) -> Result<String> {
        require_container(self.spec)?;
        let spec = self.spec;
        let mut u = UnitFile::default();
        u.comment(&format!(
            "systemd-nspawn settings for Miniguest guest {}",
            spec.name
        ))?;
        u.section("Exec")?;
        u.set("Boot", "no")?;
        u.set("Parameters", format!("/{}", files::INIT))?;
        match self.idmap {
            Some(map) => u.set("PrivateUsers", format!("{}:{}", map.uid_start, map.count))?,
            None => u.set("PrivateUsers", "no")?,
        }
        u.section("Files")?;
        let idmap = self.program_bind_options();
        u.set(
            "BindReadOnly",
            format!(
                "{}:/nix/store{idmap}",
                bind_escape(path_str(&spec.store_dir)?)
            ),
        )?;
        u.set(
            "BindReadOnly",
            format!(
                "{}:/{}{idmap}",
                bind_escape(path_str(&spec.boot_dir())?),
                files::BOOT_DIR
            ),
        )?;
        for volume in &spec.manifest.volumes {
            u.set(
                "Bind",
                format!(
                    "{}:{}",
                    bind_escape(path_str(&spec.volume_directory(volume))?),
                    bind_escape(&volume.mount_point)
                ),
            )?;
        }
        for share in &spec.manifest.shares {
            let key = if share.read_only {
                "BindReadOnly"
            } else {
                "Bind"
            };
            u.set(
                key,
                format!(
                    "{}:{}",
                    bind_escape(&share.source),
                    bind_escape(&share.mount_point)
                ),
            )?;
        }
        u.section("Network")?;
        u.set("Private", "yes")?;
        u.set("VirtualEthernet", "no")?;
        for iface in &spec.interfaces {
            match &iface.link {
                Link::Bridge(br) => u.set("Bridge", br)?,
                other => bail!("systemd-nspawn takes bridge=BR interfaces only (not {other:?})"),
            }
        }
        Ok(u.finish())
    }

    /// Writes the settings, the image link and the drop-in, or updates them.
    pub fn define(&self, dirs: &NspawnDirs) -> Result<Defined> {
        let name = self.spec.name.as_str();
        let settings = self.settings()?;
        let file = dirs.settings_file(name);
        let verdict = match std::fs::read_to_string(&file) {
            Ok(old) if old == settings => Defined::Unchanged,
            Ok(_) => Defined::Updated,
            Err(_) => Defined::Defined,
        };
        let (uid, gid) = self
            .idmap
            .map_or((0, 0), |m| (m.uid_start as u32, m.gid_start as u32));
        let mut dirs_to_make = vec![self.root(), self.root().join("usr")];
        dirs_to_make.extend(
            self.spec
                .manifest
                .volumes
                .iter()
                .map(|v| self.spec.volume_directory(v)),
        );
        super::prepare_directories(&dirs_to_make, (uid, gid))?;
        link_image(&dirs.image(name), &self.root())?;
        if let Some(hook) = &self.spec.hook {
            let mut unit = UnitFile::default();
            unit.comment("Miniguest: keep what the machine boots from garbage collection")?;
            unit.section("Service")?;
            for (key, event) in [("ExecStartPre", "started"), ("ExecStopPost", "stopped")] {
                let script = format!("{hook} {event} {name} nspawn");
                unit.set(key, command_line(&["/bin/sh", "-c", &script]))?;
            }
            write_file(
                &dirs.drop_in_dir(name).join("miniguest.conf"),
                &unit.finish(),
            )?;
        }
        write_file(&file, &settings)?;
        Ok(verdict)
    }
}

/// systemd's version, from `systemd-nspawn --version` ("systemd 252 (…)").
fn nspawn_version() -> Option<u32> {
    static VERSION: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    *VERSION.get_or_init(|| {
        let out = std::process::Command::new("systemd-nspawn")
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

/// Replaced whole, in a directory made if need be.
fn write_file(path: &Path, text: &str) -> Result<()> {
    let dir = path.parent().context("no parent directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    crate::layout::replace_file(path, text.as_bytes())
}
