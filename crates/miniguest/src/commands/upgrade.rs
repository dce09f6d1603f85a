use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};

use crate::cli::UpgradeArgs;
use crate::commands::LockedGuest;
use crate::guest::{origin, Entry, Layout};
use crate::nix;
use crate::nix::installable::{split_attr_path, Installable};
use crate::nix::profile::Profile;
use crate::nix::store_path::StorePath;
use crate::service::upgrade::{self, Apply};

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
    // Upgrades always refetch; the recorded --override-input and --impure
    // come with each guest's origin.
    let nix_args = nix::NixArgs {
        passed: args.nix.passed(),
        refresh: true,
    };
    let apply = Apply {
        restart: args.restart,
        switch: args.switch,
        no_restart: args.no_restart,
        wait: args.wait.limit(),
    };
    if args.print_origins {
        return print_origins(layout, &names);
    }
    if !args.built.is_empty() {
        return upgrade_to_built(layout, &names, &args.built, apply);
    }
    if names.len() == 1 {
        return upgrade_one(layout, &names[0], apply, &nix_args);
    }

    // Lock every guest (in name order, so two batches cannot deadlock) and
    // read where each came from; a guest that cannot be opened fails alone.
    let mut failed = 0;
    let mut guests = Vec::new();
    let mut sorted = names.clone();
    sorted.sort();
    for name in &sorted {
        match open(layout, name) {
            Ok(guest) => guests.push(guest),
            Err(e) => {
                eprintln!("error: {name}: {e:#}");
                failed += 1;
            }
        }
    }
    // Guests of one flake are evaluated together, once, and built in one
    // `nix build` (in parallel).
    // Guests evaluate together only with the same recorded Nix options.
    type Key = (String, Vec<String>, String);
    let mut by_flake: BTreeMap<Key, Vec<(LockedGuest, Installable)>> = BTreeMap::new();
    for (guest, origin) in guests {
        let top = split_attr_path(&origin.attribute)?.remove(0);
        by_flake
            .entry((origin.flake.clone(), origin.recorded_args(), top))
            .or_default()
            .push((guest, origin));
    }
    for ((_, _, top), group) in by_flake {
        let outputs = build_group(&top, &group, &nix_args)?;
        for ((guest, origin), output) in group.iter().zip(outputs) {
            let result = output.and_then(|out| finish(layout, guest, origin, out, apply));
            if let Err(e) = result {
                eprintln!("error: {}: {e:#}", guest.name);
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} guests failed to upgrade", names.len());
    }
    Ok(())
}

/// Each guest's output: one evaluation and one build for the group; if
/// either fails, each guest on its own, so that a broken one fails alone.
fn build_group(
    top: &str,
    group: &[(LockedGuest, Installable)],
    nix_args: &nix::NixArgs,
) -> Result<Vec<Result<StorePath>>> {
    let paths = group
        .iter()
        .map(|(_, o)| split_attr_path(&o.attribute).map(|p| p[1..].to_vec()))
        .collect::<Result<Vec<_>>>()?;
    let drvs = if group.len() > 1 {
        nix::eval_drv_paths(&group[0].1, top, &paths, nix_args).ok()
    } else {
        None
    };
    Ok(match drvs {
        Some(drvs) => match nix::build_drvs(&drvs, nix_args) {
            Ok(outputs) => outputs.into_iter().map(Ok).collect(),
            Err(_) => (0..drvs.paths.len())
                .map(|i| nix::build_drvs(&drvs.one(i), nix_args).map(|mut o| o.remove(0)))
                .collect(),
        },
        None => group
            .iter()
            .map(|(_, origin)| nix::build(origin, nix_args))
            .collect(),
    })
}

fn open<'a>(layout: &'a Layout, name: &str) -> Result<(LockedGuest<'a>, Installable)> {
    let guest = LockedGuest::open(layout, name)?;
    let origin_file = layout.origin_file(&guest.name);
    let origin = match origin::read(&origin_file)? {
        Some(origin) => origin,
        // Installed by the original Miniguest, with `nix profile`: its
        // manifest names the flake. Recorded now; the upgrade then sets the
        // profile as Miniguest does, the old generations kept.
        None => {
            let origin = crate::nix::nix_profile::origin(&guest.profile_path())?.with_context(|| {
                format!(
                    "guest {} has no recorded flake reference; reinstall it with `miniguest install --force`",
                    guest.name
                )
            })?;
            origin::write(&origin_file, &origin)?;
            origin
        }
    };
    Ok((guest, origin))
}

/// Where each guest came from, for a machine that builds its upgrades.
fn print_origins(layout: &Layout, names: &[String]) -> Result<()> {
    let mut origins = BTreeMap::new();
    for name in names {
        let (guest, origin) = open(layout, name).with_context(|| name.clone())?;
        origins.insert(guest.name.to_string(), origin);
    }
    crate::commands::print_json(&origins)
}

/// Upgrades each guest to the output another machine built and sent
/// (`--built NAME=STORE_PATH`), with every check a local upgrade makes.
fn upgrade_to_built(
    layout: &Layout,
    names: &[String],
    built: &[String],
    apply: Apply,
) -> Result<()> {
    let mut outputs = BTreeMap::new();
    for pair in built {
        let (name, path) = pair
            .split_once('=')
            .with_context(|| format!("--built {pair:?}: expected NAME=STORE_PATH"))?;
        let out = StorePath::new(path).with_context(|| format!("--built {name}"))?;
        anyhow::ensure!(
            out.as_path().exists(),
            "--built {name}: {out} is not in this store"
        );
        outputs.insert(name.to_owned(), out);
    }
    let mut failed = 0;
    for name in names {
        let result = match outputs.remove(name) {
            None => Err(anyhow::anyhow!("no output was sent for it")),
            Some(out) => open(layout, name)
                .and_then(|(guest, origin)| finish(layout, &guest, &origin, out, apply)),
        };
        if let Err(e) = result {
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

fn upgrade_one(layout: &Layout, name: &str, apply: Apply, nix_args: &nix::NixArgs) -> Result<()> {
    let (guest, origin) = open(layout, name)?;
    let out = nix::build(&origin, nix_args)?;
    finish(layout, &guest, &origin, out, apply)
}

/// Checks a built output, makes it the guest's current generation and, as
/// asked, applies it to the running guest (a switch or a restart), checks
/// that the guest came up, and puts everything back if it did not.
fn finish(
    layout: &Layout,
    guest: &LockedGuest,
    origin: &Installable,
    out: StorePath,
    apply: Apply,
) -> Result<()> {
    crate::contract::output::inspect(out.as_path())
        .with_context(|| format!("{} is not a Miniguest guest output", origin.to_arg()))?;
    let name = &guest.name;
    // Decided before anything changes: a refusal (--no-restart) leaves the
    // guest and its profile as they were.
    let (plan, running) = upgrade::plan(layout, name, out.as_path(), apply)?;
    let profile_path = guest.profile_path();
    let profile = Profile::new(&profile_path);
    let previous = profile.current_generation()?;
    let changed = profile.current_store_path()?.as_deref() != Some(out.as_path());
    if changed {
        nix::profile_set(&profile_path, &out)?;
        let generation = profile.current_generation()?.unwrap_or_default();
        println!("{name}: upgraded to generation {generation}: {out}");
    } else {
        let generation = previous.unwrap_or_default();
        println!("{name}: up to date (generation {generation})");
    }
    layout.ensure_link(name)?;
    let Some(running) = running else {
        return Ok(());
    };
    let applied = upgrade::carry_out(layout, name, &plan, &running, out.as_path());
    let Some(limit) = apply.wait.filter(|_| plan != upgrade::Plan::Nothing) else {
        return applied;
    };
    let failure = match applied {
        Ok(()) => upgrade::check(layout, name, &running, limit).err(),
        // A switch fails when a unit of the new system did not start: what
        // the guest then says of itself is the rest of the story.
        Err(e) => Some(match upgrade::check(layout, name, &running, limit) {
            Err(state) => e.context(format!("{state:#}")),
            Ok(()) => e,
        }),
    };
    let Some(why) = failure else {
        println!("{name}: ready");
        return Ok(());
    };
    // Back to where it was: the profile first, then the guest.
    let back_to = match (changed, previous) {
        (true, Some(generation)) => {
            nix::profile_switch(&profile_path, generation)?;
            format!("generation {generation}")
        }
        _ => "what it ran".to_owned(),
    };
    upgrade::roll_back(layout, name, &plan, &running).with_context(|| {
        format!("{name}: the upgrade failed ({why:#}), and so did rolling the guest back")
    })?;
    // Up again as it was before the upgrade, or said so.
    let back = match upgrade::check(layout, name, &running, limit) {
        Ok(()) => "it is ready again".to_owned(),
        Err(e) => format!("after rolling back, {e:#}"),
    };
    bail!("{name}: the upgraded guest failed its check ({why:#}); rolled back to {back_to}, and {back}")
}
