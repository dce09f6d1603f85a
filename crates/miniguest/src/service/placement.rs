//! Where a defined guest lives: which backend `create --define` put it in,
//! its location there, and the options it was defined with. Kept beside the
//! profile (`PROFILES_DIR/.miniguest/NAME.placement.json`), so that start,
//! stop, status and remove act through the same backend, and status can
//! tell whether the definition is still what `create` would write.

use std::path::PathBuf;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::backend::{Location, Policy, SpecOptions};
use crate::guest::{GuestName, Layout};

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

impl Placement {
    pub fn policy(&self) -> Policy {
        Policy {
            autostart: self.autostart,
            unsafe_unmapped_root: self.unsafe_unmapped_root,
        }
    }
}

fn path(layout: &Layout, name: &GuestName) -> PathBuf {
    layout.state_dir().join(format!("{name}.placement.json"))
}

pub fn read(layout: &Layout, name: &GuestName) -> Result<Option<Placement>> {
    crate::fs::read_json(&path(layout, name))
}

pub fn write(layout: &Layout, name: &GuestName, placement: &Placement) -> Result<()> {
    layout.ensure_dirs()?;
    crate::fs::write_json(&path(layout, name), placement)
}

pub fn remove(layout: &Layout, name: &GuestName) -> Result<()> {
    crate::fs::remove_if_exists(&path(layout, name))
}
