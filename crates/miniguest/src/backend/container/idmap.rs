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

/// `UID:GID:COUNT`, as hook commands carry it.
impl std::fmt::Display for IdMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.uid_start, self.gid_start, self.count)
    }
}

impl std::str::FromStr for IdMap {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<u64> = s
            .split(':')
            .map(|p| {
                p.parse::<u64>()
                    .map_err(|_| format!("invalid id map {s:?}"))
            })
            .collect::<Result<_, _>>()?;
        match parts[..] {
            [uid_start, gid_start, count] if count > 0 => Ok(IdMap {
                uid_start,
                gid_start,
                count,
            }),
            _ => Err(format!("invalid id map {s:?} (expected UID:GID:COUNT)")),
        }
    }
}

/// One line of a subuid/subgid file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Range {
    owner: String,
    start: u64,
    count: u64,
}

impl Range {
    fn end(&self) -> u64 {
        self.start.saturating_add(self.count)
    }

    fn overlaps(&self, other: &Range) -> bool {
        self.start < other.end() && other.start < self.end()
    }
}

fn ranges(text: &str) -> Vec<Range> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.trim().split(':');
            Some(Range {
                owner: fields.next()?.to_owned(),
                start: fields.next()?.parse().ok()?,
                count: fields.next()?.parse().ok()?,
            })
        })
        .collect()
}

/// root's first range of at least `RANGE` ids, refused when it holds host
/// id 0 (the container's root would be the host's root), with a warning for
/// each other owner's range it overlaps (their files become the guest's).
fn root_range(text: &str, file: &Path) -> Result<Option<(u64, u64)>> {
    let all = ranges(text);
    let Some(root) = all
        .iter()
        .find(|r| (r.owner == "root" || r.owner == "0") && r.count >= RANGE)
    else {
        return Ok(None);
    };
    if root.start == 0 {
        bail!(
            "{}: root's range {}:{}:{} contains host id 0, so the container's root would be the host's root; use a range above the host's own ids, e.g. root:1000000:{RANGE}",
            file.display(),
            root.owner,
            root.start,
            root.count
        );
    }
    for other in all
        .iter()
        .filter(|r| r.owner != root.owner && r.overlaps(root))
    {
        eprintln!(
            "warning: {}: root's range {}:{} overlaps {}'s range {}:{}; files of that user are the container's",
            file.display(),
            root.start,
            root.count,
            other.owner,
            other.start,
            other.count
        );
    }
    Ok(Some((root.start, root.count)))
}

pub fn for_root(subuid: &Path, subgid: &Path) -> Result<IdMap> {
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let uids = root_range(&read(subuid), subuid)?;
    let gids = root_range(&read(subgid), subgid)?;
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

    fn range(text: &str) -> Result<Option<(u64, u64)>> {
        root_range(text, Path::new("/etc/subuid"))
    }

    #[test]
    fn finds_roots_range_and_ignores_small_or_foreign_ones() {
        assert_eq!(
            range("alice:100000:65536\nroot:200000:65536\n").unwrap(),
            Some((200000, 65536))
        );
        assert_eq!(range("root:100000:100\n").unwrap(), None);
        assert_eq!(range("0:300000:131072").unwrap(), Some((300000, 131072)));
        assert_eq!(range("garbage\n\n").unwrap(), None);
    }

    #[test]
    fn a_range_holding_host_root_is_refused() {
        let e = format!("{:#}", range("root:0:65536\n").unwrap_err());
        assert!(e.contains("contains host id 0"), "{e}");
    }

    #[test]
    fn overlap_with_another_user_is_detected() {
        let all = ranges("alice:100000:65536\nroot:150000:65536\nbob:300000:10\n");
        assert!(all[1].overlaps(&all[0]));
        assert!(!all[1].overlaps(&all[2]));
        assert_eq!(
            range("alice:100000:65536\nroot:150000:65536\n").unwrap(),
            Some((150000, 65536))
        );
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
