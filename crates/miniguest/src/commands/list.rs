use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::Result;

use crate::commands::print_json;
use crate::contract::{GuestType, Manifest};
use crate::guest::{Entry, GuestName, Layout};
use crate::nix::profile::Profile;

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Row {
    name: String,
    /// "imperative" or "declarative"
    kind: &'static str,
    generation: Option<u64>,
    guest_type: Option<GuestType>,
    store_path: Option<PathBuf>,
    /// Set when the guest exists but cannot be used as is.
    problem: Option<String>,
}

pub fn run(layout: &Layout, json: bool) -> Result<()> {
    let mut names: BTreeSet<GuestName> = layout.listed_names()?.into_iter().collect();
    names.extend(profile_names(layout)?);

    // One guest's trouble (a profile Nix is switching right now, a broken
    // link) is reported on its row; it never fails the listing.
    let mut rows = Vec::with_capacity(names.len());
    for name in names {
        match describe(layout, &name) {
            Ok(Some(row)) => rows.push(row),
            Ok(None) => {}
            Err(e) => rows.push(Row {
                name: name.to_string(),
                kind: "unknown",
                generation: None,
                guest_type: None,
                store_path: None,
                problem: Some(format!("{e:#}")),
            }),
        }
    }
    if json {
        return print_json(&rows);
    }
    println!(
        "{:<24} {:<12} {:>4}  {:<5} STORE PATH",
        "NAME", "KIND", "GEN", "TYPE"
    );
    for row in rows {
        let generation = row.generation.map_or("-".into(), |g| g.to_string());
        let guest_type = match row.guest_type {
            Some(GuestType::Qemu) => "qemu",
            Some(GuestType::Lxc) => "lxc",
            None => "?",
        };
        let path = match (&row.problem, &row.store_path) {
            (Some(problem), _) => problem.clone(),
            (None, Some(path)) => path.display().to_string(),
            (None, None) => "-".into(),
        };
        println!(
            "{:<24} {:<12} {:>4}  {:<5} {path}",
            row.name, row.kind, generation, guest_type
        );
    }
    Ok(())
}

/// Profiles whose guest link is missing (an install cut short, or a link
/// removed by hand) are still guests; listing them makes them findable.
fn profile_names(layout: &Layout) -> Result<Vec<GuestName>> {
    let Ok(read) = std::fs::read_dir(&layout.profiles_dir) else {
        return Ok(vec![]);
    };
    let mut names = Vec::new();
    for entry in read.flatten() {
        let Some(name) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<GuestName>().ok())
        else {
            continue;
        };
        if Profile::new(&entry.path())
            .current_generation()
            .is_ok_and(|g| g.is_some())
        {
            names.push(name);
        }
    }
    Ok(names)
}

fn describe(layout: &Layout, name: &GuestName) -> Result<Option<Row>> {
    let (kind, generation, store_path) = match layout.entry(name)? {
        Entry::Foreign => return Ok(None),
        Entry::Declarative(path) => ("declarative", None, Some(path)),
        Entry::Imperative | Entry::Missing => {
            let profile_path = layout.profile(name);
            let profile = Profile::new(&profile_path);
            (
                "imperative",
                profile.current_generation()?,
                profile.current_store_path()?,
            )
        }
    };
    let (guest_type, problem) = match &store_path {
        Some(path) => match Manifest::load(path) {
            Ok(m) => (Some(m.guest_type), None),
            Err(e) => (None, Some(format!("{e:#}"))),
        },
        None => (None, Some("profile missing".into())),
    };
    Ok(Some(Row {
        name: name.to_string(),
        kind,
        generation,
        guest_type,
        store_path,
        problem,
    }))
}
