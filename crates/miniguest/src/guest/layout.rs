//! Where guests live on the host, and which of those files are ours.
//!
//! ```text
//! GUESTS_DIR/NAME            -> PROFILES_DIR/NAME      (imperative guest)
//! GUESTS_DIR/NAME            -> /etc/static/... store  (declarative guest)
//! PROFILES_DIR/NAME          -> NAME-N-link            (Nix profile)
//! PROFILES_DIR/NAME-N-link   -> /nix/store/...         (generation N)
//! PROFILES_DIR/.miniguest/NAME.json                    (origin: flake + attribute)
//! PROFILES_DIR/.miniguest/NAME.lock                    (per-guest lock)
//! PROFILES_DIR/.miniguest/NAME.placement.json          (where it is defined)
//! ```

use std::io;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::fs::remove_if_exists;
use crate::guest::GuestName;
use crate::nix::store_path::store_dir;

pub const DEFAULT_GUESTS_DIR: &str = "/etc/miniguests";
pub const DEFAULT_PROFILES_DIR: &str = "/nix/var/nix/profiles/miniguest-profiles";
const STATE_SUBDIR: &str = ".miniguest";

#[derive(Debug, Clone)]
pub struct Layout {
    pub guests_dir: PathBuf,
    pub profiles_dir: PathBuf,
}

/// What sits at `GUESTS_DIR/NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Missing,
    /// A link to our profile: an imperative guest.
    Imperative,
    /// A link into the Nix store, put there by the host's configuration.
    Declarative(PathBuf),
    /// Anything else; never touched.
    Foreign,
}

impl Layout {
    pub fn profile(&self, name: &GuestName) -> PathBuf {
        self.profiles_dir.join(name.as_str())
    }

    pub fn link(&self, name: &GuestName) -> PathBuf {
        self.guests_dir.join(name.as_str())
    }

    pub fn state_dir(&self) -> PathBuf {
        self.profiles_dir.join(STATE_SUBDIR)
    }

    pub fn origin_file(&self, name: &GuestName) -> PathBuf {
        self.state_dir().join(format!("{name}.json"))
    }

    pub fn lock_file(&self, name: &GuestName) -> PathBuf {
        self.state_dir().join(format!("{name}.lock"))
    }

    pub fn ensure_dirs(&self) -> Result<()> {
        for dir in [&self.guests_dir, &self.profiles_dir, &self.state_dir()] {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        Ok(())
    }

    pub fn entry(&self, name: &GuestName) -> Result<Entry> {
        let link = self.link(name);
        let target = match std::fs::read_link(&link) {
            Ok(target) => target,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Entry::Missing),
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => return Ok(Entry::Foreign),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", link.display())),
        };
        if target == self.profile(name) {
            return Ok(Entry::Imperative);
        }
        match link.canonicalize() {
            Ok(resolved) if resolved.starts_with(store_dir()) => Ok(Entry::Declarative(resolved)),
            _ => Ok(Entry::Foreign),
        }
    }

    /// Fails unless imperative commands may change this guest.
    pub fn check_owned(&self, name: &GuestName) -> Result<Entry> {
        let entry = self.entry(name)?;
        match &entry {
            Entry::Missing | Entry::Imperative => Ok(entry),
            Entry::Declarative(_) => bail!(
                "guest {name} is declared in the host configuration; change it there, not with miniguest"
            ),
            Entry::Foreign => bail!(
                "{} exists and is not a link to {}; refusing to touch it",
                self.link(name).display(),
                self.profile(name).display()
            ),
        }
    }

    /// Points `GUESTS_DIR/NAME` at the profile. Never replaces anything:
    /// creating the link fails if another file appeared meanwhile.
    pub fn ensure_link(&self, name: &GuestName) -> Result<()> {
        if self.check_owned(name)? == Entry::Missing {
            let link = self.link(name);
            std::os::unix::fs::symlink(self.profile(name), &link)
                .with_context(|| format!("cannot create {}", link.display()))?;
        }
        Ok(())
    }

    /// Fails unless a link can be created in `GUESTS_DIR` right now (it
    /// may be read-only, or full).
    pub fn check_writable_guests_dir(&self) -> Result<()> {
        let probe = tempfile::Builder::new()
            .prefix(".miniguest-probe")
            .tempfile_in(&self.guests_dir)
            .with_context(|| {
                format!("cannot create guest links in {}", self.guests_dir.display())
            })?;
        probe.close()?;
        Ok(())
    }

    pub fn remove_link(&self, name: &GuestName) -> Result<()> {
        if self.check_owned(name)? == Entry::Imperative {
            remove_if_exists(&self.link(name))?;
        }
        Ok(())
    }

    /// Names of everything in `GUESTS_DIR` that is a valid guest name.
    pub fn listed_names(&self) -> Result<Vec<GuestName>> {
        let read = match std::fs::read_dir(&self.guests_dir) {
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", self.guests_dir.display()))
            }
        };
        let mut names = Vec::new();
        for entry in read {
            let entry = entry?;
            if let Some(name) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }
}
