//! LXC: a container with an empty root owned by the mapped root user, the
//! store and the guest's `boot/` bind-mounted read-only, and `/boot/init` as
//! its init.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::idmap::IdMap;
use super::idmapped;
use super::{directories_script, find_program, path_str, GuestSpec};
use crate::formats::lxc::LxcConfig;
use crate::manifest::{layout as files, GuestType, Link};

pub struct Container<'a> {
    pub spec: &'a GuestSpec,
    pub lxcpath: PathBuf,
    /// None only when the user explicitly accepted an unmapped root.
    pub idmap: Option<IdMap>,
    /// Start the container when the host boots (`lxc.start.auto`).
    pub autostart: bool,
}

pub fn default_lxcpath() -> PathBuf {
    std::process::Command::new("lxc-config")
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

pub fn require_container(spec: &GuestSpec) -> Result<()> {
    if spec.manifest.guest_type != GuestType::Lxc {
        bail!(
            "guest {} is a VM (guestType qemu); build it with boot.miniguest.guestType = \"lxc\" to run it as a container",
            spec.name
        );
    }
    Ok(())
}

impl Container<'_> {
    pub fn dir(&self) -> PathBuf {
        self.lxcpath.join(self.spec.name.as_str())
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir().join("rootfs")
    }

    pub fn config(&self) -> Result<String> {
        require_container(self.spec)?;
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
        let (store, boot) = match self.program_view() {
            Some(_) => {
                let dir = idmapped::lxc_view_dir(spec.name.as_str());
                (dir.join("store"), dir.join("boot"))
            }
            None => (spec.store_dir.clone(), spec.boot_dir()),
        };
        c.mount_entry(path_str(&store)?, "nix/store", "ro,bind,create=dir")?;
        c.mount_entry(path_str(&boot)?, files::BOOT_DIR, "ro,bind,create=dir")?;
        for volume in &spec.manifest.volumes {
            c.mount_entry(
                path_str(&spec.volume_directory(volume))?,
                volume.mount_point.trim_start_matches('/'),
                "rw,bind,create=dir",
            )?;
        }
        for share in &spec.manifest.shares {
            let mode = if share.read_only { "ro" } else { "rw" };
            c.mount_entry(
                &share.source,
                share.mount_point.trim_start_matches('/'),
                &format!("{mode},bind,create=dir"),
            )?;
        }
        c.set("lxc.init.cmd", format!("/{}", files::INIT))?;
        if spec.interfaces.is_empty() {
            c.set("lxc.net.0.type", "empty")?;
        }
        for (i, iface) in spec.interfaces.iter().enumerate() {
            match &iface.link {
                Link::Bridge(br) => {
                    c.set(&format!("lxc.net.{i}.type"), "veth")?;
                    c.set(&format!("lxc.net.{i}.link"), br)?;
                    c.set(&format!("lxc.net.{i}.flags"), "up")?;
                }
                _ => bail!("LXC containers take bridge=BR interfaces only"),
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
            let hook = match self.program_view() {
                Some(map) => format!("{hook} --idmapped-view {map}"),
                None => hook.clone(),
            };
            c.set("lxc.hook.pre-start", format!("{hook} started"))?;
            c.set("lxc.hook.post-stop", format!("{hook} stopped"))?;
        }
        Ok(c.finish())
    }

    /// The map the store and `/boot` are shown through, when they can be:
    /// a mapped root, a hook to mount the views, and a host that idmaps
    /// their file systems (else the container sees them owned by nobody).
    pub fn program_view(&self) -> Option<IdMap> {
        let map = self.idmap?;
        self.program_view_error(map).is_none().then_some(map)
    }

    /// Why the program cannot be idmapped for this container, if it cannot.
    pub fn program_view_error(&self, map: IdMap) -> Option<String> {
        if self.spec.hook.is_none() {
            return Some("no hook to mount the views".into());
        }
        idmapped::program_error(self.spec, map)
    }

    /// Host directories that must exist, and their owner inside the map.
    fn directories(&self) -> Vec<PathBuf> {
        let mut dirs = vec![self.rootfs()];
        dirs.extend(
            self.spec
                .manifest
                .volumes
                .iter()
                .map(|v| self.spec.volume_directory(v)),
        );
        dirs
    }

    fn owner(&self) -> (u32, u32) {
        self.idmap
            .map(|m| (m.uid_start as u32, m.gid_start as u32))
            .unwrap_or((0, 0))
    }

    /// A shell script doing what `define` does, with LXC's own tools.
    pub fn script(&self) -> Result<String> {
        use crate::formats::shell::join;
        let config = self.config()?;
        let (uid, gid) = self.owner();
        // lxc-create wants the root directory to exist already.
        let mut s = String::from("set -e\n");
        s.push_str(&directories_script(
            &self.directories(),
            Some((uid.into(), gid.into())),
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
    pub fn define(&self) -> Result<super::Defined> {
        let config = self.config()?;
        let dir = self.dir();
        let config_path = dir.join("config");
        if dir.symlink_metadata().is_ok() {
            let old = std::fs::read_to_string(&config_path).with_context(|| {
                format!("{} exists but has no readable LXC config", dir.display())
            })?;
            let verdict = if old == config {
                super::Defined::Unchanged
            } else {
                crate::layout::replace_file(&config_path, config.as_bytes())?;
                super::Defined::Updated
            };
            self.prepare_directories()?;
            return Ok(verdict);
        }
        std::fs::create_dir_all(&self.lxcpath)
            .with_context(|| format!("cannot create {}", self.lxcpath.display()))?;
        std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let result = self.populate(&dir, &config);
        if result.is_err() {
            // Leave no half-defined container behind.
            let _ = std::fs::remove_dir_all(&dir);
        }
        result.map(|()| super::Defined::Defined)
    }

    fn populate(&self, dir: &Path, config: &str) -> Result<()> {
        std::fs::write(dir.join("config"), config)?;
        self.prepare_directories()
    }

    fn prepare_directories(&self) -> Result<()> {
        super::prepare_directories(&self.directories(), self.owner())
    }
}
