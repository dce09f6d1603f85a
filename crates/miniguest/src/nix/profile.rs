//! Reading a guest's Nix profile. Changes go through `nix-env` (see
//! `nix.rs`); reading the links directly keeps `list` fast with many guests.

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};

use crate::fs::remove_if_exists;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    pub number: u64,
    pub created: SystemTime,
    pub store_path: PathBuf,
    pub current: bool,
}

pub struct Profile<'a> {
    path: &'a Path,
}

impl<'a> Profile<'a> {
    pub fn new(path: &'a Path) -> Self {
        Profile { path }
    }

    pub fn exists(&self) -> bool {
        self.path.symlink_metadata().is_ok()
    }

    fn base_name(&self) -> &str {
        self.path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("profile paths are built from validated names")
    }

    fn parse_generation_link(&self, file_name: &str) -> Option<u64> {
        file_name
            .strip_prefix(self.base_name())?
            .strip_prefix('-')?
            .strip_suffix("-link")?
            .parse()
            .ok()
    }

    pub fn has_any_generation(&self) -> Result<bool> {
        Ok(self.exists() || !self.generation_links()?.is_empty())
    }

    pub fn current_generation(&self) -> Result<Option<u64>> {
        match std::fs::read_link(self.path) {
            Ok(target) => Ok(target
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| self.parse_generation_link(n))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", self.path.display())),
        }
    }

    pub fn current_store_path(&self) -> Result<Option<PathBuf>> {
        match self.path.canonicalize() {
            Ok(p) => Ok(Some(p)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot resolve {}", self.path.display())),
        }
    }

    fn generation_links(&self) -> Result<Vec<(u64, PathBuf)>> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let mut links = Vec::new();
        let read = match std::fs::read_dir(dir) {
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(links),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
        };
        for entry in read {
            let entry = entry?;
            if let Some(n) = entry
                .file_name()
                .to_str()
                .and_then(|n| self.parse_generation_link(n))
            {
                links.push((n, entry.path()));
            }
        }
        links.sort();
        Ok(links)
    }

    pub fn generations(&self) -> Result<Vec<Generation>> {
        let current = self.current_generation()?;
        self.generation_links()?
            .into_iter()
            .map(|(number, link)| {
                let meta = link
                    .symlink_metadata()
                    .with_context(|| format!("cannot stat {}", link.display()))?;
                let store_path = std::fs::read_link(&link)
                    .with_context(|| format!("cannot read {}", link.display()))?;
                Ok(Generation {
                    number,
                    created: meta.modified()?,
                    store_path,
                    current: Some(number) == current,
                })
            })
            .collect()
    }

    /// Deletes the profile and every generation link, current link first so
    /// that an interrupted removal never leaves a profile pointing nowhere.
    pub fn delete(&self) -> Result<()> {
        remove_if_exists(self.path)?;
        for (_, link) in self.generation_links()? {
            remove_if_exists(&link)?;
        }
        Ok(())
    }
}
