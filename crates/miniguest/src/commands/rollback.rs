use anyhow::{bail, Result};

use crate::cli::RollbackArgs;
use crate::commands::LockedGuest;
use crate::guest::Layout;
use crate::nix::{self, profile::Profile};

pub fn run(layout: &Layout, args: RollbackArgs) -> Result<()> {
    let guest = LockedGuest::open(layout, &args.name)?;
    let profile_path = guest.profile_path();
    let profile = Profile::new(&profile_path);
    let generations = profile.generations()?;
    let current = profile.current_generation()?;

    let target = match args.to {
        Some(n) if generations.iter().any(|g| g.number == n) => n,
        Some(n) => bail!("guest {} has no generation {n}", guest.name),
        None => match generations
            .iter()
            .rev()
            .find(|g| current.is_some_and(|c| g.number < c))
        {
            Some(previous) => previous.number,
            None => bail!(
                "guest {} has no generation before the current one",
                guest.name
            ),
        },
    };
    if Some(target) != current {
        nix::profile_switch(&profile_path, target)?;
    }
    layout.ensure_link(&guest.name)?;
    println!("{}: now at generation {target}", guest.name);
    Ok(())
}
