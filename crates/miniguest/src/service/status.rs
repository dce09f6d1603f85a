//! What runs, from what, and what must restart: one row per guest, each
//! backend location asked once about all its guests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;

use std::time::Duration;

use super::exec::Channel;
use super::{defined, DefinedGuest};
use crate::backend::exec::Readiness;
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
    /// What it runs now: what it was switched to since it booted, else
    /// what it booted.
    pub running: Option<PathBuf>,
    pub current: Option<PathBuf>,
    pub needs_restart: bool,
    pub reasons: Vec<&'static str>,
    /// Whether a running guest says its boot has finished; null when it
    /// cannot tell (not running, no readiness command, no way in).
    pub ready: Option<bool>,
    /// What it said: `running`, `degraded` or `starting`.
    pub readiness: Option<&'static str>,
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
    // Each running guest asked at once: a readiness answer takes a round
    // trip into the guest.
    let said: Vec<Option<Readiness>> = std::thread::scope(|scope| {
        let asks: Vec<_> = names
            .iter()
            .zip(&states)
            .map(|(name, state)| {
                let running = *state == State::Running;
                scope.spawn(move || {
                    running
                        .then(|| Channel::open(layout, name).ok())
                        .flatten()
                        .and_then(|c| c.readiness(Duration::from_secs(2)))
                })
            })
            .collect();
        asks.into_iter().map(|a| a.join().unwrap_or(None)).collect()
    });
    names
        .iter()
        .zip(guests)
        .zip(states)
        .zip(said)
        .map(|(((name, guest), state), said)| {
            let mut row = row(layout, name, guest, state)?;
            row.ready = said.as_ref().map(|r| *r == Readiness::Ready);
            row.readiness = said.as_ref().map(Readiness::as_str);
            Ok(row)
        })
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
            running: None,
            current,
            needs_restart: false,
            reasons: vec![],
            ready: None,
            readiness: None,
        });
    };
    let booted = if state == State::Running {
        booted::get(name)
    } else {
        // Its root goes once the guest has stopped.
        booted::clear(name)?;
        None
    };
    let running = (state == State::Running)
        .then(|| booted::running(name))
        .flatten();
    let mut reasons = match (&booted, &running, &current) {
        (Some(b), Some(r), Some(c)) => changes(b, r, c),
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
        running,
        current,
        reasons,
        ready: None,
        readiness: None,
    })
}

/// What differs between what a guest runs and its current output: what it
/// booted (kernel, initrd, kernel parameters, resources, devices) against
/// the current output's, and what it runs now (stage 2, which a switch
/// changes without a boot) against the current stage 2.
pub fn changes(booted: &Path, running: &Path, current: &Path) -> Vec<&'static str> {
    let resolved = |root: &Path, rel: &str| root.join(rel).canonicalize().ok();
    let differs = |a: &Path, rel: &str| resolved(a, rel) != resolved(current, rel);
    let mut reasons = Vec::new();
    if booted != current {
        if differs(booted, files::KERNEL) {
            reasons.push("kernel");
        }
        if differs(booted, files::INITRD) {
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
                if (b.volumes, b.shares, b.interfaces, b.agent)
                    != (c.volumes, c.shares, c.interfaces, c.agent)
                {
                    reasons.push("devices");
                }
            }
            _ => reasons.push("devices"),
        }
    }
    if running != current && differs(running, files::INIT) {
        reasons.push("stage2");
    }
    reasons
}
