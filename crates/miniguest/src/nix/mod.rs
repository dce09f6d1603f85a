//! The `nix` and `nix-env` commands, wrapped. Nix's own progress and errors
//! go straight to the user's terminal; only stdout is captured. Beside the
//! wrapper: typed store paths, profiles and their generations, flake
//! references (installables), and the profiles the original Miniguest made
//! with `nix profile`.

pub mod installable;
pub mod nix_profile;
pub mod profile;
pub mod store_path;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;

use installable::Installable;
use store_path::StorePath;

pub trait CommandExt {
    /// Runs the command, passing stderr through, and fails with the
    /// command's name when it exits non-zero.
    fn run_checked(&mut self) -> Result<()>;
    /// Like `run_checked`, and parses stdout as JSON.
    fn capture_json<T: DeserializeOwned>(&mut self) -> Result<T>;
}

impl CommandExt for Command {
    fn run_checked(&mut self) -> Result<()> {
        tracing::debug!(command = ?self, "running");
        let status = self
            .stdin(Stdio::null())
            .status()
            .with_context(|| format!("cannot run {}", program_name(self)))?;
        if !status.success() {
            bail!("{} failed ({status})", program_name(self));
        }
        Ok(())
    }

    fn capture_json<T: DeserializeOwned>(&mut self) -> Result<T> {
        tracing::debug!(command = ?self, "running");
        let output = self
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("cannot run {}", program_name(self)))?;
        if !output.status.success() {
            bail!("{} failed ({})", program_name(self), output.status);
        }
        serde_json::from_slice(&output.stdout)
            .with_context(|| format!("unexpected output from {}", program_name(self)))
    }
}

fn program_name(cmd: &Command) -> String {
    let args: Vec<_> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args().take(1))
        .map(OsStr::to_string_lossy)
        .collect();
    format!("`{}`", args.join(" "))
}

#[derive(serde::Deserialize)]
struct BuildResult {
    outputs: std::collections::BTreeMap<String, String>,
}

/// Options for one Nix invocation beyond the installable: what the user
/// passed through (`-L`, `--show-trace`, `--option N V`, `--offline`,
/// anything after `--`) and whether to refetch the flake.
#[derive(Debug, Clone, Default)]
pub struct NixArgs {
    pub passed: Vec<String>,
    pub refresh: bool,
}

impl NixArgs {
    fn apply(&self, cmd: &mut Command, installable: Option<&Installable>) {
        if self.refresh {
            cmd.arg("--refresh");
        }
        if let Some(i) = installable {
            cmd.args(i.recorded_args());
        }
        cmd.args(&self.passed);
    }
}

/// Builds an installable without creating a result link and returns its
/// `out` path.
pub fn build(installable: &Installable, args: &NixArgs) -> Result<StorePath> {
    let mut cmd = Command::new("nix");
    cmd.args(["build", "--json", "--no-link"]);
    args.apply(&mut cmd, Some(installable));
    // Whatever the installable says, it is never an option.
    cmd.arg("--").arg(installable.to_arg());
    let results: Vec<BuildResult> = cmd.capture_json()?;
    let out = results
        .into_iter()
        .next()
        .and_then(|r| r.outputs.get("out").cloned())
        .context("`nix build` reported no output")?;
    StorePath::new(out)
}

/// Derivations to build, and what the evaluating Nix needs to be told to
/// build their outputs.
pub struct Derivations {
    pub paths: Vec<String>,
    /// Since Nix 2.13 a bare `.drv` names the derivation file itself (newer
    /// versions build nothing for it) and `DRV^out` its output; Nix 2.8
    /// knows no `^` and builds the outputs of a bare one.
    output_suffix: &'static str,
}

impl Derivations {
    fn installables(&self) -> impl Iterator<Item = String> + '_ {
        self.paths
            .iter()
            .map(|drv| format!("{drv}{}", self.output_suffix))
    }

    /// The one derivation at `index`, for building it on its own.
    pub fn one(&self, index: usize) -> Derivations {
        Derivations {
            paths: vec![self.paths[index].clone()],
            output_suffix: self.output_suffix,
        }
    }
}

/// Evaluates a flake once for several guests: the derivations of the
/// attribute paths `paths` below its output `top`, in order. Pure
/// evaluation, as `nix build FLAKE#ATTR` does it, but one evaluation for
/// all (Nix 2.8 evaluates a flake again for each installable). The same
/// evaluation says which Nix it is (`builtins.nixVersion`), so building
/// them needs no other question.
/// `flake` is one of the guests' installables: its flake reference and
/// recorded options serve for all.
pub fn eval_drv_paths(
    flake: &Installable,
    top: &str,
    paths: &[Vec<String>],
    args: &NixArgs,
) -> Result<Derivations> {
    use crate::formats::nix::string_list;
    let lists: Vec<String> = paths
        .iter()
        .map(|p| string_list(p.iter().map(String::as_str)))
        .collect();
    let apply = format!(
        "root: {{ version = builtins.nixVersion; drvs = map (path: (builtins.foldl' (value: name: value.${{name}}) root path).drvPath) [ {} ]; }}",
        lists.join(" ")
    );
    let mut cmd = Command::new("nix");
    cmd.args(["eval", "--json"]);
    args.apply(&mut cmd, Some(flake));
    cmd.arg("--apply").arg(apply).arg("--");
    cmd.arg(format!("{}#{}", flake.flake, installable::quote_attr(top)));
    #[derive(serde::Deserialize)]
    struct Evaluated {
        version: String,
        drvs: Vec<String>,
    }
    let evaluated: Evaluated = cmd.capture_json()?;
    if evaluated.drvs.len() != paths.len() {
        bail!(
            "`nix eval` gave {} derivations for {} guests",
            evaluated.drvs.len(),
            paths.len()
        );
    }
    let version = parse_version(&evaluated.version)
        .with_context(|| format!("unexpected Nix version {:?}", evaluated.version))?;
    Ok(Derivations {
        paths: evaluated.drvs,
        output_suffix: if version >= (2, 13) { "^out" } else { "" },
    })
}

/// Builds derivations in one `nix build` and returns each one's `out`.
pub fn build_drvs(drvs: &Derivations, args: &NixArgs) -> Result<Vec<StorePath>> {
    let mut cmd = Command::new("nix");
    cmd.args(["build", "--json", "--no-link"]);
    cmd.args(&args.passed);
    cmd.arg("--").args(drvs.installables());
    let results: Vec<DrvResult> = cmd.capture_json()?;
    // Nix reports them in its own order.
    drvs.paths
        .iter()
        .map(|drv| {
            let result = results
                .iter()
                .find(|r| &r.drv_path == drv)
                .with_context(|| format!("`nix build` did not report {drv}"))?;
            let out = result
                .outputs
                .get("out")
                .cloned()
                .context("`nix build` reported no output")?;
            StorePath::new(out)
        })
        .collect()
}

/// A Nix version, (major, minor), as `nix --version` or
/// `builtins.nixVersion` print it ("nix (Nix) 2.26.3", "2.8.0").
fn parse_version(printed: &str) -> Option<(u64, u64)> {
    let word = printed.split_whitespace().last()?;
    let mut parts = word.split(['.', 'p', 'r', '-']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DrvResult {
    drv_path: String,
    outputs: std::collections::BTreeMap<String, String>,
}

/// Every store path `path` needs, itself included, as Nix computes it.
pub fn requisites(path: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("nix-store")
        .args(["--query", "--requisites"])
        .arg(path)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run nix-store")?;
    if !out.status.success() {
        bail!("nix-store --query --requisites {} failed", path.display());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(PathBuf::from)
        .collect())
}

/// Makes `path` the profile's current generation (a new one unless it
/// already is current).
pub fn profile_set(profile: &Path, path: &StorePath) -> Result<()> {
    nix_env(profile)
        .arg("--set")
        .arg(path.as_path())
        .run_checked()
}

pub fn profile_switch(profile: &Path, generation: u64) -> Result<()> {
    nix_env(profile)
        .args(["--switch-generation", &generation.to_string()])
        .run_checked()
}

fn nix_env(profile: &Path) -> Command {
    let mut cmd = Command::new("nix-env");
    cmd.arg("--profile").arg(profile);
    cmd
}

#[cfg(test)]
mod tests {
    use super::parse_version;

    #[test]
    fn versions_as_nix_prints_them() {
        assert_eq!(parse_version("nix (Nix) 2.8.0\n"), Some((2, 8)));
        assert_eq!(parse_version("nix (Nix) 2.26.3"), Some((2, 26)));
        assert_eq!(
            parse_version("nix (Nix) 2.31pre20250101_abc"),
            Some((2, 31))
        );
        assert_eq!(parse_version("nix (Lix, like Nix) 2.91.1"), Some((2, 91)));
        assert_eq!(parse_version("2.8.0"), Some((2, 8)));
        assert_eq!(parse_version("garbage"), None);
    }
}
