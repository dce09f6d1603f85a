//! `--build-host`: evaluated here, built there, as `nixos-rebuild
//! --build-host` does it. The derivation and what it needs go to the build
//! host with Nix's remote store, its Nix realises it, and the output goes
//! from there to the target through this machine.

use anyhow::{bail, Context, Result};

use super::Session;
use crate::nix::installable::{split_attr_path, Installable};
use crate::nix::store_path::StorePath;
use crate::nix::{self, NixArgs};

/// Builds `installable` on the build host `session` reaches and returns
/// its output there.
pub fn build(session: &Session, installable: &Installable, args: &NixArgs) -> Result<StorePath> {
    let mut path = split_attr_path(&installable.attribute)?;
    let top = path.remove(0);
    let drvs = nix::eval_drv_paths(installable, &top, &[path], args)?;
    let drv = StorePath::new(&drvs.paths[0])?;
    session.copy_derivation(&drv)?;
    let realise = ["nix-store", "--realise", &drv.to_string()].map(str::to_owned);
    let (code, printed) = session.output(&realise)?;
    if code != 0 {
        bail!(
            "build host {}: nix-store --realise {drv} failed (exit status {code})",
            session.target()
        );
    }
    let printed = String::from_utf8_lossy(&printed);
    let out = printed
        .lines()
        .last()
        .with_context(|| format!("build host {}: nix-store named no output", session.target()))?;
    StorePath::new(out.trim()).with_context(|| format!("build host {}", session.target()))
}
