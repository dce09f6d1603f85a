//! The workspace's rust-version is what the `miniguest` package really
//! needs: the highest rust-version among its normal and build dependencies
//! (clippy's incompatible_msrv lint holds the project's own code to it).
//! Packagers read it to know the oldest nixpkgs the package builds on.

use std::collections::BTreeSet;
use std::process::Command;

fn version(v: &str) -> (u64, u64) {
    let mut parts = v.split('.').map(|p| p.parse::<u64>().unwrap());
    (parts.next().unwrap(), parts.next().unwrap_or(0))
}

/// The target this toolchain builds for by default, as `rustc -vV` says.
fn host_triple() -> String {
    let out = Command::new("rustc").arg("-vV").output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names its host")
        .to_owned()
}

#[test]
fn rust_version_is_the_highest_a_dependency_needs() {
    let cargo = env!("CARGO");
    let tree = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-p",
            "miniguest",
            "-e",
            "normal,build",
            "--prefix",
            "none",
        ])
        .output()
        .unwrap();
    assert!(
        tree.status.success(),
        "{}",
        String::from_utf8_lossy(&tree.stderr)
    );
    let used: BTreeSet<(String, String)> = String::from_utf8(tree.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((
                w.next()?.to_owned(),
                w.next()?.trim_start_matches('v').to_owned(),
            ))
        })
        .collect();
    // Only this platform's packages: `cargo build` downloads no others (a
    // Windows-only crate is never in a Linux cache), and only these count.
    let meta = Command::new(cargo)
        .args(["metadata", "--offline", "--format-version", "1"])
        .args(["--filter-platform", &host_triple()])
        .output()
        .unwrap();
    assert!(
        meta.status.success(),
        "{}",
        String::from_utf8_lossy(&meta.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&meta.stdout).unwrap();
    let mut ours = None;
    let mut needed = (0, 0);
    let mut by = String::new();
    for p in meta["packages"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let Some(rv) = p["rust_version"].as_str() else {
            continue;
        };
        if name == "miniguest" {
            ours = Some(version(rv));
        } else if used.contains(&(name.to_owned(), p["version"].as_str().unwrap().to_owned()))
            && version(rv) > needed
        {
            needed = version(rv);
            by = format!("{name} {}", p["version"].as_str().unwrap());
        }
    }
    assert_eq!(
        ours,
        Some(needed),
        "rust-version should be {needed:?}, which {by} needs"
    );
}
