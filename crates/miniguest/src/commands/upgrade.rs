use anyhow::{bail, Context, Result};

use crate::cli::UpgradeArgs;
use crate::commands::LockedGuest;
use crate::layout::{Entry, Layout};
use crate::profile::Profile;
use crate::{nix, origin};

pub fn run(layout: &Layout, args: UpgradeArgs) -> Result<()> {
    let names: Vec<String> = if args.all {
        let mut names = Vec::new();
        for name in layout.listed_names()? {
            if layout.entry(&name)? == Entry::Imperative {
                names.push(name.to_string());
            }
        }
        names
    } else {
        args.names
    };

    let mut failed = 0;
    for name in &names {
        if let Err(e) = upgrade_one(layout, name) {
            if names.len() == 1 {
                return Err(e);
            }
            eprintln!("error: {name}: {e:#}");
            failed += 1;
        }
    }
    if failed > 0 {
        bail!("{failed} of {} guests failed to upgrade", names.len());
    }
    Ok(())
}

fn upgrade_one(layout: &Layout, name: &str) -> Result<()> {
    let guest = LockedGuest::open(layout, name)?;
    let origin = origin::read(&layout.origin_file(&guest.name))?.with_context(|| {
        format!(
            "guest {} has no recorded flake reference; reinstall it with `miniguest install --force`",
            guest.name
        )
    })?;
    let profile_path = guest.profile_path();
    let profile = Profile::new(&profile_path);

    let out = nix::build(&origin, true)?;
    crate::output::inspect(out.as_path())
        .with_context(|| format!("{} is not a Miniguest guest output", origin.to_arg()))?;

    if profile.current_store_path()?.as_deref() == Some(out.as_path()) {
        let generation = profile.current_generation()?.unwrap_or_default();
        println!("{}: up to date (generation {generation})", guest.name);
    } else {
        nix::profile_set(&profile_path, &out)?;
        let generation = profile.current_generation()?.unwrap_or_default();
        println!("{}: upgraded to generation {generation}: {out}", guest.name);
    }
    layout.ensure_link(&guest.name)
}
