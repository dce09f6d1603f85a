//! What of the host a guest gets: the policy that keeps a guest's shares
//! away from the host's system directories, and the list `create` shows.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use super::capabilities::VolumeForm;
use super::GuestSpec;
use crate::contract::files;

/// Trees a share may neither be, contain, nor lie inside: sharing them
/// would hand a guest the host's configuration, secrets, devices or
/// programs. The Nix store is added at run time (it may be moved).
const SYSTEM_TREES: &[&str] = &[
    "/nix", "/etc", "/boot", "/root", "/proc", "/sys", "/dev", "/run", "/usr", "/bin", "/sbin",
    "/lib", "/lib32", "/lib64", "/libx32",
];

/// Directories a share may lie inside but not be (nor contain): a guest
/// may well get `/srv/data`, but not all of `/srv`, let alone `/home`.
const SHARED_PARENTS: &[&str] = &["/var", "/home", "/srv", "/opt", "/mnt", "/media", "/tmp"];

/// Why sharing `path` is dangerous, or None.
fn danger(path: &Path, store: &Path) -> Option<String> {
    if path == Path::new("/") {
        return Some("it is the host's root".into());
    }
    let store_tree = [store];
    let trees = SYSTEM_TREES.iter().map(Path::new).chain(store_tree);
    for tree in trees {
        if path.starts_with(tree) {
            return Some(format!("it is inside {}", tree.display()));
        }
        if tree.starts_with(path) {
            return Some(format!("it contains {}", tree.display()));
        }
    }
    SHARED_PARENTS
        .iter()
        .map(Path::new)
        .find(|p| *p == path)
        .map(|p| format!("it is all of {}", p.display()))
}

/// Refuses a share of the store, `/` or a system directory unless the user
/// named that exact source with `--allow-share`. The path is judged both as
/// written and as it resolves now, so a link to `/etc` does not pass.
pub fn check_shares(spec: &GuestSpec, allowed: &[PathBuf]) -> Result<()> {
    for (i, share) in spec.manifest.shares.iter().enumerate() {
        let written = PathBuf::from(share.source.as_str());
        let resolved = written.canonicalize().ok();
        let is_allowed = allowed.iter().any(|a| {
            let a_resolved = a.canonicalize().ok();
            *a == written || (a_resolved.is_some() && a_resolved == resolved)
        });
        if is_allowed {
            continue;
        }
        let store = &spec.store_dir;
        let verdict =
            danger(&written, store).or_else(|| resolved.as_deref().and_then(|r| danger(r, store)));
        if let Some(why) = verdict {
            bail!(
                "shares[{i}].source: refusing to share {} with guest {} ({why}); pass --allow-share {} if you mean it",
                share.source,
                spec.name,
                crate::formats::shell::quote(share.source.as_str())
            );
        }
    }
    Ok(())
}

/// One host path a guest reaches, for the listing `create` prints.
pub struct ReachedPath {
    pub path: String,
    pub writable: bool,
    pub what: String,
}

/// Everything on the host the guest will see, program shares first.
pub fn host_paths(spec: &GuestSpec, volumes: VolumeForm) -> Result<Vec<ReachedPath>> {
    let mut out: Vec<ReachedPath> = spec
        .mounts()?
        .into_iter()
        .map(|m| ReachedPath {
            what: match m.tag.as_str() {
                files::STORE_TAG if !spec.store_view.is_full() => {
                    "only its closure of the Nix store, a view built at start".into()
                }
                files::STORE_TAG => "the Nix store".into(),
                files::BOOT_TAG => "the guest's boot directory".into(),
                tag => format!("share {tag}"),
            },
            path: m.source,
            writable: !m.read_only,
        })
        .collect();
    for volume in &spec.manifest.volumes {
        let path = if volumes == VolumeForm::Image {
            spec.volume_image(volume)
        } else {
            spec.volume_directory(volume)
        };
        out.push(ReachedPath {
            path: super::host::path_str(&path)?.to_owned(),
            writable: true,
            what: format!("volume {}", volume.name),
        });
    }
    for c in &spec.credentials {
        out.push(ReachedPath {
            path: super::host::path_str(&c.source)?.to_owned(),
            writable: false,
            what: format!("credential {}, read at each start", c.name),
        });
    }
    Ok(out)
}

/// The network a guest gets, in words.
pub fn network(spec: &GuestSpec) -> String {
    use crate::contract::Link;
    if spec.interfaces.is_empty() {
        return "none".into();
    }
    let words: Vec<String> = spec
        .interfaces
        .iter()
        .map(|i| match &i.link {
            Link::User(ports) if ports.is_empty() => "user-mode".to_owned(),
            Link::User(ports) => {
                let fwd: Vec<String> = ports
                    .iter()
                    .map(|p| {
                        format!(
                            "{}:{} -> {}/{}",
                            p.address,
                            p.host,
                            p.guest,
                            p.proto.as_str()
                        )
                    })
                    .collect();
                format!("user-mode, forwarding {}", fwd.join(", "))
            }
            Link::Bridge(br) => format!("bridge {br}"),
            Link::Network(net) => format!("libvirt network {net}"),
        })
        .collect();
    words.join("; ")
}

/// The listing, for standard error: standard output carries the command.
pub fn describe(spec: &GuestSpec, volumes: VolumeForm) -> Result<String> {
    let mut text = format!("guest {} gets network: {}\n", spec.name, network(spec));
    text.push_str(&format!("guest {} gets these host paths:\n", spec.name));
    for p in host_paths(spec, volumes)? {
        let mode = if p.writable {
            "read-write"
        } else {
            "read-only"
        };
        text.push_str(&format!(
            "  {:<10} {}  ({})\n",
            mode,
            p.path.escape_debug(),
            p.what
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_trees_and_their_parents_are_dangerous() {
        let store = Path::new("/nix/store");
        for bad in [
            "/",
            "/etc",
            "/etc/ssh",
            "/nix",
            "/nix/store",
            "/nix/store/abc",
            "/var",
            "/home",
            "/dev/sda",
            "/usr/lib",
        ] {
            assert!(danger(Path::new(bad), store).is_some(), "{bad}");
        }
        for ok in [
            "/srv/data",
            "/home/alice/share",
            "/var/lib/app",
            "/data",
            "/tmp/x",
        ] {
            assert_eq!(danger(Path::new(ok), store), None, "{ok}");
        }
    }
}
