//! LXC: a container with an empty root owned by the mapped root user, the
//! store and the guest's `boot/` bind-mounted read-only, and `/boot/init` as
//! its init.

use std::fmt::Write;
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::idmap::IdMap;
use super::{directories_script, find_program, path_str, GuestSpec};
use crate::manifest::{layout as files, GuestType, InterfaceType};

pub struct Container<'a> {
    pub spec: &'a GuestSpec,
    pub lxcpath: PathBuf,
    /// None only when the user explicitly accepted an unmapped root.
    pub idmap: Option<IdMap>,
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

/// Mount entries use fstab syntax, where white space separates fields.
fn fstab_escape(path: &str) -> String {
    let mut out = String::new();
    for c in path.chars() {
        match c {
            ' ' | '\t' | '\n' | '\\' => {
                let _ = write!(out, "\\{:03o}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
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
        let mut c = String::new();
        writeln!(c, "# LXC container for Miniguest guest {}", spec.name)?;
        if let Some(dir) = lxc_config_dir() {
            writeln!(c, "lxc.include = {}", dir.join("common.conf").display())?;
            if self.idmap.is_some() {
                writeln!(c, "lxc.include = {}", dir.join("userns.conf").display())?;
            }
        }
        writeln!(c, "lxc.uts.name = {}", spec.hostname())?;
        writeln!(c, "lxc.rootfs.path = dir:{}", path_str(&self.rootfs())?)?;
        match self.idmap {
            Some(map) => {
                writeln!(c, "lxc.idmap = u 0 {} {}", map.uid_start, map.count)?;
                writeln!(c, "lxc.idmap = g 0 {} {}", map.gid_start, map.count)?;
            }
            None => writeln!(
                c,
                "# WARNING: root is not mapped; this guest can write to the host's Nix store"
            )?,
        }
        let store = fstab_escape(path_str(&spec.store_dir)?);
        writeln!(
            c,
            "lxc.mount.entry = {store} nix/store none ro,bind,create=dir 0 0"
        )?;
        let boot = fstab_escape(path_str(&spec.boot_dir())?);
        writeln!(
            c,
            "lxc.mount.entry = {boot} {} none ro,bind,create=dir 0 0",
            files::BOOT_DIR
        )?;
        for volume in &spec.manifest.volumes {
            let source = fstab_escape(path_str(&spec.volume_directory(volume))?);
            let target = fstab_escape(volume.mount_point.trim_start_matches('/'));
            writeln!(
                c,
                "lxc.mount.entry = {source} {target} none rw,bind,create=dir 0 0"
            )?;
        }
        for share in &spec.manifest.shares {
            let mode = if share.read_only { "ro" } else { "rw" };
            let target = fstab_escape(share.mount_point.trim_start_matches('/'));
            writeln!(
                c,
                "lxc.mount.entry = {} {target} none {mode},bind,create=dir 0 0",
                fstab_escape(&share.source)
            )?;
        }
        writeln!(c, "lxc.init.cmd = /{}", files::INIT)?;
        if spec.interfaces.is_empty() {
            writeln!(c, "lxc.net.0.type = empty")?;
        }
        for (i, iface) in spec.interfaces.iter().enumerate() {
            match (iface.kind, &iface.source) {
                (InterfaceType::Bridge, Some(br)) => {
                    writeln!(
                        c,
                        "lxc.net.{i}.type = veth\nlxc.net.{i}.link = {br}\nlxc.net.{i}.flags = up"
                    )?;
                }
                _ => bail!("LXC containers take bridge=BR interfaces only"),
            }
            if let Some(mac) = &iface.mac {
                writeln!(c, "lxc.net.{i}.hwaddr = {mac}")?;
            }
        }
        if let Some(log) = &spec.console_log {
            writeln!(c, "lxc.console.logfile = {}", path_str(log)?)?;
        }
        Ok(c)
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
        use crate::shell::join;
        let config = self.config()?;
        let (uid, gid) = self.owner();
        // lxc-create wants the root directory to exist already.
        let mut s = String::from("set -e\n");
        s.push_str(&directories_script(
            &self.directories(),
            Some((uid.into(), gid.into())),
        )?);
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
        s.push_str(" <<'MINIGUEST_LXC_CONFIG'\n");
        s.push_str(&config);
        s.push_str("MINIGUEST_LXC_CONFIG\n");
        Ok(s)
    }

    pub fn define(&self) -> Result<()> {
        let config = self.config()?;
        let dir = self.dir();
        if dir.symlink_metadata().is_ok() {
            bail!(
                "container {} already exists in {}; remove it with `lxc-destroy -n {}` first",
                self.spec.name,
                self.lxcpath.display(),
                crate::shell::quote(self.spec.name.as_str())
            );
        }
        std::fs::create_dir_all(&self.lxcpath)
            .with_context(|| format!("cannot create {}", self.lxcpath.display()))?;
        std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let result = self.populate(&dir, &config);
        if result.is_err() {
            // Leave no half-defined container behind.
            let _ = std::fs::remove_dir_all(&dir);
        }
        result
    }

    fn populate(&self, dir: &Path, config: &str) -> Result<()> {
        std::fs::write(dir.join("config"), config)?;
        let (uid, gid) = self.owner();
        for d in self.directories() {
            std::fs::create_dir_all(&d)
                .with_context(|| format!("cannot create {}", d.display()))?;
            chown(&d, Some(uid), Some(gid))
                .with_context(|| format!("cannot give {} to the container's root", d.display()))?;
        }
        Ok(())
    }
}
