//! The output's `boot/nix-path-registration`: the guest's closure as
//! `nix-store --load-db` reads it (per path: the path, its hash, its size,
//! its deriver, a count of references, then the references; nixpkgs'
//! `closureInfo` writes this), or as `exportReferencesGraph` writes it
//! (the same without hash and size). It is the
//! guest's word, read only as data: bounded, a regular file, and every path
//! a plain name directly in the store. Whoever shows a guest these paths
//! checks them against the closure Nix itself computes.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::files;

/// A closure of tens of thousands of paths is some megabytes.
pub const MAX_BYTES: u64 = 64 * 1024 * 1024;

/// The store paths the registration lists, as names in `store_dir`.
pub fn closure(output: &Path, store_dir: &Path) -> Result<Vec<String>> {
    let path = output.join(files::REGISTRATION);
    let at = || path.display().to_string();
    let file = std::fs::File::open(&path).with_context(|| format!("cannot read {}", at()))?;
    if !file.metadata()?.is_file() {
        bail!("{} is not a regular file", at());
    }
    let mut text = String::new();
    file.take(MAX_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {}", at()))?;
    if text.len() as u64 > MAX_BYTES {
        bail!("{} is larger than {MAX_BYTES} bytes", at());
    }
    parse(&text, store_dir).with_context(at)
}

/// The paths of a registration's text.
pub fn parse(text: &str, store_dir: &Path) -> Result<Vec<String>> {
    let mut lines = text.lines().enumerate();
    let mut names = Vec::new();
    while let Some((n, line)) = lines.next() {
        if line.is_empty() {
            continue;
        }
        names.push(store_name(line, store_dir).with_context(|| format!("line {}", n + 1))?);
        let (_, second) = lines
            .next()
            .with_context(|| format!("line {}: the entry ends early", n + 1))?;
        // A hash (never empty, never a path; `sha256:…` or bare hex), then
        // the size and the deriver; or the deriver alone (empty or a path).
        if !second.is_empty() && !second.starts_with('/') {
            for _ in 0..2 {
                lines
                    .next()
                    .with_context(|| format!("line {}: the entry ends early", n + 1))?;
            }
        }
        let (m, count) = lines
            .next()
            .with_context(|| format!("line {}: the entry ends early", n + 1))?;
        let count: usize = count
            .trim()
            .parse()
            .with_context(|| format!("line {}: {count:?} is not a count of references", m + 1))?;
        for _ in 0..count {
            let (r, reference) = lines
                .next()
                .with_context(|| format!("line {}: fewer references than counted", m + 1))?;
            store_name(reference, store_dir).with_context(|| format!("line {}", r + 1))?;
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// The name of `line`, a path directly in the store, in Nix's alphabet.
fn store_name(line: &str, store_dir: &Path) -> Result<String> {
    let name = Path::new(line)
        .strip_prefix(store_dir)
        .ok()
        .and_then(|rest| rest.to_str())
        .filter(|rest| !rest.contains('/'))
        .unwrap_or_default();
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-._?=".contains(&b));
    if !ok {
        bail!(
            "{line:?} is not a path directly in the store {}",
            store_dir.display()
        );
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORE: &str = "/nix/store";

    #[test]
    fn reads_paths_and_skips_references() {
        let text = "/nix/store/aaa-a\nsha256:x\n10\n\n2\n/nix/store/aaa-a\n/nix/store/bbb-b\n/nix/store/bbb-b\nsha256:y\n5\n/nix/store/d.drv\n0\n";
        assert_eq!(parse(text, Path::new(STORE)).unwrap(), ["aaa-a", "bbb-b"]);
    }

    #[test]
    fn reads_the_reference_graphs_format_too() {
        let text =
            "/nix/store/aaa-a\n\n1\n/nix/store/bbb-b\n/nix/store/bbb-b\n/nix/store/x.drv\n0\n";
        assert_eq!(parse(text, Path::new(STORE)).unwrap(), ["aaa-a", "bbb-b"]);
    }

    #[test]
    fn refuses_what_is_not_a_store_path() {
        for bad in [
            "/etc/shadow\nh\n1\n\n0\n",
            "/nix/store/../etc\nh\n1\n\n0\n",
            "/nix/store/a/b\nh\n1\n\n0\n",
            "/nix/store/.x\nh\n1\n\n0\n",
            "/nix/store/a\nh\n1\n\n2\n/nix/store/b\n",
            "/nix/store/a\nsha256:h\n1\n\nmany\n",
            "/nix/store/a\nh\n1\n\n1\n/etc/passwd\n",
        ] {
            assert!(parse(bad, Path::new(STORE)).is_err(), "{bad:?}");
        }
    }
}
