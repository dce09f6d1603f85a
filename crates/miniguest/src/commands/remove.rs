use anyhow::{bail, Result};

use crate::commands::parse_name;
use crate::layout::{remove_if_exists, Entry, Layout};
use crate::lock;
use crate::profile::Profile;

pub fn run(layout: &Layout, name: &str) -> Result<()> {
    let name = parse_name(name)?;
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
    // The visible link goes first, so the guest never looks half there.
    layout.remove_link(&name)?;
    profile.delete()?;
    remove_if_exists(&layout.origin_file(&name))?;
    println!("removed guest {name}; `nix-store --gc` reclaims its store paths");
    Ok(())
}
