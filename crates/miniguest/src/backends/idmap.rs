//! Subordinate id ranges for mapping a container's root away from the
//! host's. A privileged container's root can remount the read-only store
//! bind read-write and write into the host's store; a mapped root cannot.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// Smallest range that holds a whole NixOS system's ids.
pub const RANGE: u64 = 65536;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMap {
    pub uid_start: u64,
    pub gid_start: u64,
    pub count: u64,
}

/// root's first range of at least `RANGE` ids in a subuid/subgid file.
fn root_range(text: &str) -> Option<(u64, u64)> {
    text.lines().find_map(|line| {
        let mut fields = line.trim().split(':');
        let owner = fields.next()?;
        let start: u64 = fields.next()?.parse().ok()?;
        let count: u64 = fields.next()?.parse().ok()?;
        ((owner == "root" || owner == "0") && count >= RANGE).then_some((start, count))
    })
}

pub fn for_root(subuid: &Path, subgid: &Path) -> Result<IdMap> {
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let uids = root_range(&read(subuid));
    let gids = root_range(&read(subgid));
    match (uids, gids) {
        (Some((u, uc)), Some((g, gc))) => Ok(IdMap {
            uid_start: u,
            gid_start: g,
            count: uc.min(gc).min(RANGE),
        }),
        _ => bail!(
            "root has no subordinate id range of {RANGE} ids: add the line `root:1000000:{RANGE}` \
             (or another free range) to both {} and {}",
            subuid.display(),
            subgid.display()
        ),
    }
}

/// Reads /etc/subuid and /etc/subgid, or the pair in MINIGUEST_SUBID_DIR.
pub fn for_root_on_host() -> Result<IdMap> {
    let dir = std::env::var_os("MINIGUEST_SUBID_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/etc".into());
    for_root(&dir.join("subuid"), &dir.join("subgid")).context("cannot map the container's root")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_roots_range_and_ignores_small_or_foreign_ones() {
        assert_eq!(
            root_range("alice:100000:65536\nroot:200000:65536\n"),
            Some((200000, 65536))
        );
        assert_eq!(root_range("root:100000:100\n"), None);
        assert_eq!(root_range("0:300000:131072"), Some((300000, 131072)));
        assert_eq!(root_range("garbage\n\n"), None);
    }

    #[test]
    fn missing_range_says_what_to_add() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("subuid");
        std::fs::write(&f, "alice:100000:65536\n").unwrap();
        let err = format!("{:#}", for_root(&f, &f).unwrap_err());
        assert!(err.contains("root:1000000:65536"), "{err}");
    }
}
