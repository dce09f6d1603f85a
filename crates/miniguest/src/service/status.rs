//! What runs, from what, and what must restart: one row per guest, each
//! backend location asked once about all its guests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::{defined, DefinedGuest};
use crate::backend::{GuestSpec, Kind, State};
use crate::contract::{files, Manifest};
use crate::guest::{booted, GuestName, Layout};

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub name: String,
    pub backend: Option<Kind>,
    pub state: State,
    pub booted: Option<PathBuf>,
    pub current: Option<PathBuf>,
    pub needs_restart: bool,
    pub reasons: Vec<&'static str>,
}

pub fn rows(layout: &Layout, names: &[GuestName]) -> Result<Vec<Row>> {
    let mut guests = Vec::new();
    let mut by_location: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, name) in names.iter().enumerate() {
        let guest = defined(layout, name)?;
        if let Some(g) = &guest {
            let key = serde_json::to_string(&g.placement.location)?;
            by_location.entry(key).or_default().push(i);
        }
        guests.push(guest);
    }
    let mut states = vec![State::Undefined; names.len()];
    for indices in by_location.values() {
        let backend = &guests[indices[0]]
            .as_ref()
            .expect("grouped guests are defined")
            .backend;
        let asked: Vec<GuestName> = indices.iter().map(|&i| names[i].clone()).collect();
        for (&i, state) in indices.iter().zip(backend.states(&asked)?) {
            states[i] = state;
        }
    }
    names
        .iter()
        .zip(guests)
        .zip(states)
        .map(|((name, guest), state)| row(layout, name, guest, state))
        .collect()
}

fn row(
    layout: &Layout,
    name: &GuestName,
    guest: Option<DefinedGuest>,
    state: State,
) -> Result<Row> {
    let current = layout.link(name).canonicalize().ok();
    let Some(guest) = guest else {
        return Ok(Row {
            name: name.to_string(),
            backend: None,
            state: State::Undefined,
            booted: None,
            current,
            needs_restart: false,
            reasons: vec![],
        });
    };
    let booted = if state == State::Running {
        booted::get(name)
    } else {
        // Its root goes once the guest has stopped.
        booted::clear(name)?;
        None
    };
    let mut reasons = match (&booted, &current) {
        (Some(b), Some(c)) => changes(b, c),
        _ => vec![],
    };
    // The definition Miniguest would write now, against the one it wrote.
    let now = GuestSpec::resolve(layout, name, &guest.placement.options)
        .and_then(|spec| guest.backend.prepare(&spec))
        .and_then(|spec| guest.backend.definition(&spec));
    if now.map_or(true, |d| d != guest.placement.written) {
        reasons.push("definition");
    }
    Ok(Row {
        name: name.to_string(),
        backend: Some(guest.placement.location.kind()),
        needs_restart: state == State::Running && !reasons.is_empty(),
        state,
        booted,
        current,
        reasons,
    })
}

/// What differs between the output a guest booted and the current one.
pub fn changes(booted: &Path, current: &Path) -> Vec<&'static str> {
    if booted == current {
        return vec![];
    }
    let resolved = |root: &Path, rel: &str| root.join(rel).canonicalize().ok();
    let differs = |rel: &str| resolved(booted, rel) != resolved(current, rel);
    let mut reasons = Vec::new();
    if differs(files::KERNEL) {
        reasons.push("kernel");
    }
    if differs(files::INITRD) {
        reasons.push("initrd");
    }
    match (Manifest::load(booted), Manifest::load(current)) {
        (Ok(b), Ok(c)) => {
            if b.kernel_params != c.kernel_params {
                reasons.push("kernelParams");
            }
            if (b.memory_mib, b.vcpus) != (c.memory_mib, c.vcpus) {
                reasons.push("resources");
            }
            if (b.volumes, b.shares, b.interfaces) != (c.volumes, c.shares, c.interfaces) {
                reasons.push("devices");
            }
        }
        _ => reasons.push("devices"),
    }
    if differs(files::INIT) {
        reasons.push("stage2");
    }
    reasons
}
