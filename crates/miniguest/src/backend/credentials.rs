//! systemd credentials: secrets the host hands a guest when it starts.
//! The guest's manifest names the credentials it expects; only the host
//! says where each one's value is (`create --credential NAME=PATH`), so a
//! guest output can never make the host read a file. Values travel by
//! each hypervisor's own mechanism (QEMU's fw_cfg, nspawn's
//! `LoadCredential=`, a directory for LXC); only their source paths reach
//! a definition, a command line or a log.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::contract::values::CredentialName;
use crate::guest::GuestName;

/// systemd's largest credential (`CREDENTIAL_SIZE_MAX`).
pub const MAX_BYTES: u64 = 1024 * 1024;

/// Where QEMU's fw_cfg offers a credential to the guest's systemd.
pub const FW_CFG_PREFIX: &str = "opt/io.systemd.credentials/";

/// Where a container's systemd finds its credentials: the directory
/// `$CREDENTIALS_DIRECTORY` names, as systemd-nspawn passes them.
pub const CONTAINER_DIR: &str = "/run/host/credentials";

/// One credential as the host supplies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub name: CredentialName,
    pub source: PathBuf,
}

impl Credential {
    pub fn fw_cfg_name(&self) -> String {
        format!("{FW_CFG_PREFIX}{}", self.name)
    }
}

/// `--credential NAME=PATH`.
pub fn parse_option(value: &str) -> Result<Credential, String> {
    let (name, path) = value
        .split_once('=')
        .ok_or_else(|| format!("{value:?} is not NAME=PATH"))?;
    let name = CredentialName::try_from(name)?;
    if path.is_empty() {
        return Err(format!("credential {name}: no source path"));
    }
    Ok(Credential {
        name,
        source: PathBuf::from(path),
    })
}

/// The credentials `guest` gets: exactly those its manifest declares, each
/// from a source the host supplied, which must be a regular file small
/// enough for systemd and outside the Nix store (which every user and
/// every guest can read).
pub fn resolve(
    guest: &GuestName,
    declared: &[CredentialName],
    supplied: &[Credential],
    store_dir: &Path,
) -> Result<Vec<Credential>> {
    for (i, c) in supplied.iter().enumerate() {
        if supplied[..i].iter().any(|o| o.name == c.name) {
            bail!("--credential {}: given twice", c.name);
        }
        if !declared.contains(&c.name) {
            bail!(
                "--credential {}: guest {guest} does not declare it (boot.miniguest.credentials: {})",
                c.name,
                list(declared)
            );
        }
    }
    let mut out = Vec::new();
    for name in declared {
        let Some(c) = supplied.iter().find(|c| &c.name == name) else {
            bail!("credential {name}: guest {guest} expects it; give --credential {name}=PATH");
        };
        check_source(c, store_dir)?;
        out.push(c.clone());
    }
    Ok(out)
}

fn list(names: &[CredentialName]) -> String {
    if names.is_empty() {
        return "none".into();
    }
    names
        .iter()
        .map(CredentialName::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_source(c: &Credential, store_dir: &Path) -> Result<()> {
    let at = || format!("--credential {}", c.name);
    if !c.source.is_absolute() {
        bail!("{}: {} is not an absolute path", at(), c.source.display());
    }
    crate::contract::values::plain_text(&c.source.to_string_lossy())
        .map_err(|e| anyhow::anyhow!("{}: {e}", at()))?;
    let resolved = c
        .source
        .canonicalize()
        .with_context(|| format!("{}: cannot read {}", at(), c.source.display()))?;
    if resolved.starts_with(store_dir) {
        bail!(
            "{}: {} is in the Nix store, which every user and every guest can read",
            at(),
            c.source.display()
        );
    }
    let meta = std::fs::metadata(&resolved)?;
    if !meta.is_file() {
        bail!("{}: {} is not a regular file", at(), c.source.display());
    }
    if meta.len() > MAX_BYTES {
        bail!(
            "{}: {} is larger than systemd's {MAX_BYTES}-byte limit for a credential",
            at(),
            c.source.display()
        );
    }
    Ok(())
}

/// The per-guest directory holding copies of a guest's credentials while
/// it runs, for hypervisors that read them as another user (libvirt's
/// QEMU) or from inside the guest (an LXC container).
pub fn staging_dir(name: &GuestName) -> PathBuf {
    PathBuf::from("/run/miniguest/credentials").join(name.as_str())
}

/// Where `stage` puts credential `c` of guest `name`.
pub fn staged_path(name: &GuestName, c: &Credential) -> PathBuf {
    staging_dir(name).join(c.name.as_str())
}

/// Who reads a guest's staged credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// libvirt's QEMU, as the user libvirt runs it as: libvirt hands it
    /// each file it names (its DAC driver relabels the file, not its
    /// directory), so the directory is root's and only traversable.
    Hypervisor,
    /// An LXC container's root (uid, gid on the host), through a
    /// read-only bind: the directory is its own and closed to everyone
    /// else.
    Container(u32, u32),
}

/// Copies each credential into `dir`, afresh, as files of mode 0400. Each
/// source is read through its path once, bounded, and must still be a
/// regular file.
pub fn stage(dir: &Path, credentials: &[Credential], reader: Reader) -> Result<()> {
    use std::io::Read;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    unstage(dir)?;
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o711))?;
    }
    let (mode, owner) = match reader {
        Reader::Hypervisor => (0o711, None),
        Reader::Container(uid, gid) => (0o700, Some((uid, gid))),
    };
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    for c in credentials {
        let at = || format!("credential {}: {}", c.name, c.source.display());
        let source =
            std::fs::File::open(&c.source).with_context(|| format!("{}: cannot read it", at()))?;
        if !source.metadata()?.is_file() {
            bail!("{}: not a regular file", at());
        }
        let target = dir.join(c.name.as_str());
        let mut copy = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .open(&target)
            .with_context(|| format!("cannot create {}", target.display()))?;
        let copied = std::io::copy(&mut source.take(MAX_BYTES + 1), &mut copy)?;
        if copied > MAX_BYTES {
            bail!("{}: larger than {MAX_BYTES} bytes", at());
        }
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&target, Some(uid), Some(gid))?;
        }
    }
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(dir, Some(uid), Some(gid))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// What `stage` does for a VM, as a shell script for printed commands.
pub fn staging_script(spec: &super::GuestSpec) -> Result<String> {
    use crate::formats::shell::join;
    if spec.credentials.is_empty() {
        return Ok(String::new());
    }
    let dir = staging_dir(&spec.name);
    let mut s = String::new();
    for d in [dir.parent().expect("a parent"), &dir] {
        let d = super::host::path_str(d)?;
        s.push_str(&join(&[
            "install".into(),
            "-d".into(),
            "-m".into(),
            "0711".into(),
            d.into(),
        ]));
        s.push('\n');
    }
    for c in &spec.credentials {
        s.push_str(&join(&[
            "install".into(),
            "-m".into(),
            "0400".into(),
            super::host::path_str(&c.source)?.into(),
            super::host::path_str(&staged_path(&spec.name, c))?.into(),
        ]));
        s.push('\n');
    }
    Ok(s)
}

/// Removes a guest's staged credentials, if any.
pub fn unstage(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> CredentialName {
        n.parse().unwrap()
    }

    #[test]
    fn options_parse_and_refuse_bad_names() {
        let c = parse_option("ssh-host-key=/etc/keys/a").unwrap();
        assert_eq!(c.name, name("ssh-host-key"));
        assert_eq!(c.fw_cfg_name(), "opt/io.systemd.credentials/ssh-host-key");
        assert!(parse_option("a/b=/x").is_err());
        assert!(parse_option(".hidden=/x").is_err());
        assert!(parse_option("novalue").is_err());
        assert!(parse_option("a=").is_err());
    }

    #[test]
    fn declared_and_supplied_must_agree() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "v").unwrap();
        let guest: GuestName = "web".parse().unwrap();
        let store = Path::new("/nix/store");
        let given = |n: &str| Credential {
            name: name(n),
            source: file.clone(),
        };
        let ok = resolve(&guest, &[name("a")], &[given("a")], store).unwrap();
        assert_eq!(ok.len(), 1);
        let e = resolve(&guest, &[name("a")], &[], store).unwrap_err();
        assert!(
            e.to_string().contains("credential a: guest web expects it"),
            "{e}"
        );
        let e = resolve(&guest, &[name("a")], &[given("a"), given("b")], store).unwrap_err();
        assert!(
            e.to_string()
                .contains("--credential b: guest web does not declare it"),
            "{e}"
        );
        let e = resolve(&guest, &[name("a")], &[given("a"), given("a")], store).unwrap_err();
        assert!(e.to_string().contains("given twice"), "{e}");
        let e = resolve(
            &guest,
            &[name("a")],
            &[Credential {
                name: name("a"),
                source: dir.path().into(),
            }],
            store,
        )
        .unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let e = resolve(&guest, &[name("a")], &[given("a")], dir.path()).unwrap_err();
        assert!(e.to_string().contains("in the Nix store"), "{e}");
    }
}
