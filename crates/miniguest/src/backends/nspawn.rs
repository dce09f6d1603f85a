//! systemd-nspawn: the same two read-only binds and a private user range,
//! as a command line.

use std::path::PathBuf;

use anyhow::{bail, Result};

use super::idmap::IdMap;
use super::lxc::require_container;
use super::{directories_script, path_str, GuestSpec};
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
        argv.push(format!(
            "--bind-ro={}:/nix/store",
            bind_escape(path_str(&spec.store_dir)?)
        ));
        argv.push(format!(
            "--bind-ro={}:/{}",
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
