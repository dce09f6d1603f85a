use anyhow::{bail, Context, Result};

use crate::cli::InstallArgs;
use crate::commands::parse_name;
use crate::fs::remove_if_exists;
use crate::guest::{lock, origin, Entry, GuestName, Layout};
use crate::nix::installable::{self, Installable};
use crate::nix::store_path::StorePath;
use crate::nix::{self, profile::Profile};

/// The flake reference to build and record, and the guest's name.
pub(crate) fn resolve(args: &InstallArgs) -> Result<(Installable, GuestName)> {
    let cwd = std::env::current_dir().context("cannot determine the working directory")?;
    let mut parsed = installable::parse(&args.source, &cwd)?;
    // Recorded with the guest: its upgrades build what this install built.
    parsed.installable.override_inputs = args.nix.override_inputs();
    parsed.installable.impure = args.nix.impure;
    let name = match args.name.as_deref().or(parsed.implied_name.as_deref()) {
        Some(name) => parse_name(name)?,
        None => bail!(
            "cannot tell the guest's name from attribute {:?}; pass -n NAME",
            parsed.installable.attribute
        ),
    };
    Ok((parsed.installable, name))
}

/// Builds the guest and checks that what was built is a guest output.
pub(crate) fn build(installable: &Installable, args: &InstallArgs) -> Result<StorePath> {
    let nix_args = nix::NixArgs {
        passed: args.nix.passed(),
        refresh: args.nix.refresh,
    };
    let out = nix::build(installable, &nix_args)?;
    crate::contract::output::inspect(out.as_path())
        .with_context(|| format!("{} is not a Miniguest guest output", installable.to_arg()))?;
    Ok(out)
}

/// What another machine built and sent (`--built`, `--origin`): the
/// output must be in this store, the origin a flake reference.
fn received(
    args: &InstallArgs,
    built: &std::path::Path,
) -> Result<(Installable, GuestName, StorePath)> {
    let out = StorePath::new(built).context("--built")?;
    anyhow::ensure!(
        out.as_path().exists(),
        "--built: {out} is not in this store"
    );
    let origin: Installable = serde_json::from_str(args.origin.as_deref().unwrap_or_default())
        .context("--origin: not a flake reference record")?;
    let name = parse_name(args.name.as_deref().unwrap_or_default())?;
    crate::contract::output::inspect(out.as_path())
        .with_context(|| format!("{} is not a Miniguest guest output", origin.to_arg()))?;
    Ok((origin, name, out))
}

pub fn run(layout: &Layout, args: InstallArgs) -> Result<()> {
    let (installable, name, built) = match &args.built {
        Some(path) => {
            let (origin, name, out) = received(&args, path)?;
            (origin, name, Some(out))
        }
        None => {
            let (installable, name) = resolve(&args)?;
            (installable, name, None)
        }
    };

    let _lock = lock::lock(layout, &name)?;
    let entry = layout.check_owned(&name)?;
    let profile_path = layout.profile(&name);
    let profile = Profile::new(&profile_path);
    // A profile without its link, with our origin record, is an install
    // that was cut short: finishing it needs no --force.
    let unfinished = entry == Entry::Missing && layout.origin_file(&name).exists();
    if profile.exists() && !args.force && !unfinished {
        bail!("guest {name} is already installed; use --force to replace it (as a new generation)");
    }
    // Find out now, not after the build, that the link cannot be made.
    layout.check_writable_guests_dir()?;

    let out = match built {
        Some(out) => out,
        None => build(&installable, &args)?,
    };

    // Origin first: if we die before the profile is set, the next install
    // overwrites it; the other order could leave a profile nobody can upgrade.
    let origin_file = layout.origin_file(&name);
    let old_origin = origin::read(&origin_file).ok().flatten();
    if old_origin.as_ref() != Some(&installable) {
        origin::write(&origin_file, &installable)?;
    }
    let previous = profile.current_generation()?;
    nix::profile_set(&profile_path, &out)?;
    if let Err(e) = layout.ensure_link(&name) {
        // No half-installed guest: put the profile back as it was.
        let undo = match previous {
            Some(generation) => {
                nix::profile_switch(&profile_path, generation).and_then(|()| match &old_origin {
                    Some(o) => origin::write(&origin_file, o),
                    None => Ok(()),
                })
            }
            None => profile
                .delete()
                .and_then(|()| remove_if_exists(&origin_file)),
        };
        if let Err(undo) = undo {
            eprintln!("warning: could not undo the profile change: {undo:#}");
        }
        return Err(e);
    }

    let generation = profile.current_generation()?.unwrap_or_default();
    println!("installed guest {name} (generation {generation}): {out}");
    Ok(())
}
