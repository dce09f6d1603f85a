use anyhow::{bail, Result};

use std::time::Duration;

use crate::backend::State;
use crate::cli::RemoveArgs;
use crate::commands::parse_name;
use crate::fs::remove_if_exists;
use crate::guest::{booted, lock, Entry, Layout};
use crate::nix::profile::Profile;
use crate::service::{defined, placement};

pub fn run(layout: &Layout, args: RemoveArgs) -> Result<()> {
    let name = parse_name(&args.name)?;
    let _lock = lock::lock(layout, &name)?;
    let entry = layout.check_owned(&name)?;
    let profile_path = layout.profile(&name);
    let profile = Profile::new(&profile_path);
    // A removal cut short leaves generation links without a profile; they
    // still count as installed here so that running remove again finishes.
    if entry == Entry::Missing && !profile.has_any_generation()? {
        bail!("guest {name} is not installed");
    }
    // A profile of that name that Miniguest never installed (no link of
    // ours, no origin record) belongs to someone else.
    if entry == Entry::Missing && !layout.origin_file(&name).exists() {
        bail!(
            "{} was not installed by miniguest (no link {} and no origin record); refusing to delete it",
            profile_path.display(),
            layout.link(&name).display()
        );
    }
    // A running guest is not pulled from under itself.
    if let Some(guest) = defined(layout, &name)? {
        if guest.backend.state(&name)? == State::Running {
            if !args.force {
                bail!("guest {name} is running; stop it first, or pass --force");
            }
            guest.backend.stop(&name, true, Duration::from_secs(30))?;
        }
        if !args.keep_definition && guest.backend.state(&name)? != State::Undefined {
            guest.backend.undefine(&name)?;
            println!("undefined {} guest {name}", guest.placement.location.kind());
        }
        placement::remove(layout, &name)?;
    }
    booted::clear(&name)?;
    // The visible link goes first, so the guest never looks half there.
    layout.remove_link(&name)?;
    profile.delete()?;
    remove_if_exists(&layout.origin_file(&name))?;
    println!("removed guest {name}; `nix-store --gc` reclaims its store paths");
    Ok(())
}
