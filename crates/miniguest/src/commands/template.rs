use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::template::FILES;

pub fn run(dir: &Path) -> Result<()> {
    // Check everything before writing anything, so a refusal leaves no
    // partial template behind.
    let existing: Vec<String> = FILES
        .iter()
        .map(|(rel, _)| dir.join(rel))
        .filter(|p| p.symlink_metadata().is_ok())
        .map(|p| p.display().to_string())
        .collect();
    if !existing.is_empty() {
        bail!(
            "refusing to overwrite existing files: {}",
            existing.join(", ")
        );
    }
    for (rel, contents) in FILES {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        file.write_all(contents)?;
    }
    println!(
        "wrote a guest flake to {}; install a guest with: miniguest install {}#stateless",
        dir.display(),
        crate::formats::shell::quote(&dir.display().to_string())
    );
    Ok(())
}
