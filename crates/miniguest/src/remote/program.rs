//! This program as a store path, so that a host runs the very same
//! Miniguest with nothing installed but Nix: its package when it runs from
//! the store, else its executables added to the store here.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::nix::store_path::{store_dir, StorePath};

/// The helpers that run beside the main program (`backend::host::helper_program`).
const HELPERS: [&str; 2] = ["miniguest-libvirt", "miniguest-virtiofsd"];

#[derive(Clone)]
pub struct Program {
    /// What is copied to the host.
    pub package: StorePath,
    /// What the host runs.
    pub executable: PathBuf,
}

/// Found (and added to the store) once a command, however many hosts it
/// reaches.
pub fn own() -> Result<Program> {
    static OWN: std::sync::Mutex<Option<Program>> = std::sync::Mutex::new(None);
    let mut own = OWN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(program) = own.as_ref() {
        return Ok(program.clone());
    }
    let program = find()?;
    *own = Some(program.clone());
    Ok(program)
}

fn find() -> Result<Program> {
    let exe = std::env::current_exe()
        .and_then(|e| e.canonicalize())
        .context("cannot find this program")?;
    if let Some(package) = top_store_path(&exe) {
        return Ok(Program {
            package,
            executable: exe,
        });
    }
    // A build outside the store: its programs, as a package's bin/.
    let staging = tempfile::tempdir()?;
    let bin = staging.path().join("miniguest/bin");
    std::fs::create_dir_all(&bin)?;
    std::fs::copy(&exe, bin.join("miniguest"))
        .with_context(|| format!("cannot copy {}", exe.display()))?;
    let dir = exe.parent().unwrap_or(Path::new("/"));
    for helper in HELPERS {
        if dir.join(helper).is_file() {
            std::fs::copy(dir.join(helper), bin.join(helper))?;
        }
    }
    let out = Command::new("nix-store")
        .arg("--add")
        .arg(staging.path().join("miniguest"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cannot run nix-store --add")?;
    anyhow::ensure!(
        out.status.success(),
        "nix-store --add of this program failed ({})",
        out.status
    );
    let package = StorePath::new(String::from_utf8_lossy(&out.stdout).trim())?;
    let executable = package.as_path().join("bin/miniguest");
    Ok(Program {
        package,
        executable,
    })
}

/// The store path `path` lies in, if it lies in the store.
fn top_store_path(path: &Path) -> Option<StorePath> {
    let store = store_dir();
    let rest = path.strip_prefix(&store).ok()?;
    let first = rest.components().next()?;
    StorePath::new(store.join(first)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_in_the_store_is_its_package() {
        let store = store_dir();
        let exe = store.join("abc-miniguest-1/bin/miniguest");
        assert_eq!(
            top_store_path(&exe).unwrap().as_path(),
            store.join("abc-miniguest-1")
        );
        assert!(top_store_path(Path::new("/usr/bin/miniguest")).is_none());
    }
}
