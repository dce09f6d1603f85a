//! A defined guest's credentials, staged where its hypervisor reads them
//! as it starts (by the hook, however the guest is started, and by
//! `start` where the hook may not run) and removed when it stops. Plain QEMU and nspawn read the
//! sources themselves, as root, and need no copies.

use anyhow::Result;

use super::placement::Placement;
use crate::backend::container;
use crate::backend::credentials::{self, Reader};
use crate::backend::Location;
use crate::guest::GuestName;

fn reader(placement: &Placement) -> Result<Option<Reader>> {
    Ok(match placement.location {
        Location::Libvirt(_) => Some(Reader::Hypervisor),
        Location::Lxc(_) => {
            // The container's root, as the backend maps it.
            let root = container::root_map(placement.policy())?
                .map_or((0, 0), |m| (m.uid_start as u32, m.gid_start as u32));
            Some(Reader::Container(root.0, root.1))
        }
        Location::Qemu | Location::Nspawn(_) => None,
    })
}

/// Stages the credentials `placement` records for guest `name`, or
/// removes stale copies where it records none.
pub fn stage(placement: &Placement, name: &GuestName) -> Result<()> {
    let dir = credentials::staging_dir(name);
    match reader(placement)? {
        Some(reader) if !placement.options.credentials.is_empty() => {
            credentials::stage(&dir, &placement.options.credentials, reader)
        }
        _ => credentials::unstage(&dir),
    }
}

pub fn unstage(name: &GuestName) -> Result<()> {
    credentials::unstage(&credentials::staging_dir(name))
}
