use anyhow::{bail, Context, Result};

use crate::cli::InstallArgs;
use crate::commands::parse_name;
use crate::layout::Layout;
use crate::profile::Profile;
use crate::{installable, lock, nix, origin};

pub fn run(layout: &Layout, args: InstallArgs) -> Result<()> {
    let cwd = std::env::current_dir().context("cannot determine the working directory")?;
    let parsed = installable::parse(&args.source, &cwd)?;
    let name = match args.name.as_deref().or(parsed.implied_name.as_deref()) {
        Some(name) => parse_name(name)?,
        None => bail!(
            "cannot tell the guest's name from attribute {:?}; pass -n NAME",
            parsed.installable.attribute
        ),
    };

    let _lock = lock::lock(layout, &name)?;
    layout.check_owned(&name)?;
    let profile_path = layout.profile(&name);
    let profile = Profile::new(&profile_path);
    if profile.exists() && !args.force {
        bail!("guest {name} is already installed; use --force to replace it (as a new generation)");
    }

    let out = nix::build(&parsed.installable, false)?;
    crate::output::inspect(out.as_path()).with_context(|| {
        format!(
            "{} is not a Miniguest guest output",
            parsed.installable.to_arg()
        )
    })?;

    // Origin first: if we die before the profile is set, the next install
    // overwrites it; the other order could leave a profile nobody can upgrade.
    let origin_file = layout.origin_file(&name);
    if origin::read(&origin_file).ok().flatten().as_ref() != Some(&parsed.installable) {
        origin::write(&origin_file, &parsed.installable)?;
    }
    nix::profile_set(&profile_path, &out)?;
    layout.ensure_link(&name)?;

    let generation = profile.current_generation()?.unwrap_or_default();
    println!("installed guest {name} (generation {generation}): {out}");
    Ok(())
}
