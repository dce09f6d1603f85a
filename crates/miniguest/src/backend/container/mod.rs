//! What LXC and nspawn containers share: root mapped to a subordinate
//! range (`idmap`), the program shown through idmapped read-only views
//! (`idmapped`), and the host directories handed to the mapped root.

pub mod idmap;
pub mod idmapped;

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::host::path_str;
use super::{GuestSpec, Policy};
use idmap::IdMap;

/// root's id map for a container, as the policy allows: None only when the
/// user asked for an unmapped root.
pub fn root_map(policy: Policy) -> Result<Option<IdMap>> {
    if policy.unsafe_unmapped_root {
        return Ok(None);
    }
    idmap::for_root_on_host().map(Some)
}

/// The warnings `create` prints for a container: an unmapped root, or a
/// program that cannot be idmapped (`why`).
pub fn caveats(map: Option<IdMap>, why_not_idmapped: Option<String>) -> Vec<String> {
    match map {
        None => vec![
            "the container's root is the host's root; it can write to the host's Nix store".into(),
        ],
        Some(_) => why_not_idmapped
            .map(|why| idmapped::unmapped_warning(&why))
            .into_iter()
            .collect(),
    }
}

/// The directories a container's volumes live in.
pub fn volume_directories(spec: &GuestSpec) -> Vec<PathBuf> {
    spec.manifest
        .volumes
        .iter()
        .map(|v| spec.volume_directory(v))
        .collect()
}

/// Shell lines creating a container's host directories, each handed to
/// `owner` (the mapped root) when one is given.
pub fn directories_script(dirs: &[PathBuf], owner: Option<(u32, u32)>) -> Result<String> {
    let mut script = String::new();
    for dir in dirs {
        let dir = crate::formats::shell::quote(path_str(dir)?).into_owned();
        script.push_str(&format!("mkdir -p {dir}\n"));
        if let Some((uid, gid)) = owner {
            // -h: a directory the container can write may hold a link it
            // planted (`usr -> /etc`); chown must not follow it to the host.
            script.push_str(&format!("chown -h {uid}:{gid} {dir}\n"));
        }
    }
    Ok(script)
}

/// What `directories_script` prints, done: creates a container's host
/// directories and hands them to `owner` (the mapped root), never through
/// a link the container may have planted.
pub fn prepare_directories(dirs: &[PathBuf], (uid, gid): (u32, u32)) -> Result<()> {
    for dir in dirs {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        std::os::unix::fs::lchown(dir, Some(uid), Some(gid))
            .with_context(|| format!("cannot give {} to the container's root", dir.display()))?;
    }
    Ok(())
}

/// The owner of a container's directories: its mapped root, or root.
pub fn owner(map: Option<IdMap>) -> (u32, u32) {
    map.map_or((0, 0), |m| (m.uid_start as u32, m.gid_start as u32))
}
