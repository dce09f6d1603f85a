//! Where a defined guest lives: which backend `create --define` put it in,
//! its location there, and the options it was defined with. Kept beside the
//! profile (`PROFILES_DIR/.miniguest/NAME.placement.json`), so that start,
//! stop, status and remove act through the same backend, and status can
//! tell whether the definition is still what `create` would write.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::backends::SpecOptions;
use crate::guest_name::GuestName;
use crate::layout::Layout;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase")]
pub enum Location {
    Libvirt {
        uri: String,
    },
    Lxc {
        lxcpath: PathBuf,
    },
    #[serde(rename_all = "camelCase")]
    Nspawn {
        settings_dir: PathBuf,
        machines_dir: PathBuf,
        units_dir: PathBuf,
    },
}

impl Location {
    pub fn backend(&self) -> &'static str {
        match self {
            Location::Libvirt { .. } => "libvirt",
            Location::Lxc { .. } => "lxc",
            Location::Nspawn { .. } => "nspawn",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    #[serde(flatten)]
    pub location: Location,
    pub options: SpecOptions,
    #[serde(default)]
    pub autostart: bool,
    #[serde(default)]
    pub unsafe_unmapped_root: bool,
    /// The definition as Miniguest wrote it (domain XML, LXC config).
    pub written: String,
}

fn path(layout: &Layout, name: &GuestName) -> PathBuf {
    layout.state_dir().join(format!("{name}.placement.json"))
}

pub fn read(layout: &Layout, name: &GuestName) -> Result<Option<Placement>> {
    let file = path(layout, name);
    match std::fs::read(&file) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("corrupt record {}", file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", file.display())),
    }
}

pub fn write(layout: &Layout, name: &GuestName, placement: &Placement) -> Result<()> {
    layout.ensure_dirs()?;
    crate::origin::write_json(&path(layout, name), placement)
}

pub fn remove(layout: &Layout, name: &GuestName) -> Result<()> {
    crate::layout::remove_if_exists(&path(layout, name))
}
