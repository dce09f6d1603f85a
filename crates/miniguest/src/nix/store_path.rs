//! A typed Nix store path, so that a profile is only ever pointed at
//! something Nix built.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct StorePath(PathBuf);

/// The store directory Nix uses here (`NIX_STORE_DIR` moves it).
pub fn store_dir() -> PathBuf {
    std::env::var_os("NIX_STORE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/nix/store"))
}

impl StorePath {
    pub fn new(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let store = store_dir();
        match path.strip_prefix(&store) {
            Ok(rest) if rest.components().count() == 1 => Ok(StorePath(path)),
            _ => bail!(
                "{} is not a path in the Nix store {}",
                path.display(),
                store.display()
            ),
        }
    }

    pub fn as_path(&self) -> &Path {
        &self.0
    }
}

impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.display().fmt(f)
    }
}
