//! `status`: what runs, from what, and what must restart.

use anyhow::Result;

use crate::cli::StatusArgs;
use crate::commands::{parse_name, print_json};
use crate::guest::{GuestName, Layout};
use crate::service::status;

pub fn run(layout: &Layout, args: StatusArgs) -> Result<()> {
    let names: Vec<GuestName> = if args.names.is_empty() {
        layout.listed_names()?
    } else {
        args.names
            .iter()
            .map(|n| parse_name(n))
            .collect::<Result<_>>()?
    };
    let rows = status::rows(layout, &names)?;
    if args.json {
        return print_json(&rows);
    }
    println!(
        "{:<24} {:<8} {:<9} {:<9} {:<7} {:<24} RUNNING",
        "NAME", "BACKEND", "STATE", "READY", "RESTART", "REASONS"
    );
    for row in rows {
        let reasons = if row.reasons.is_empty() {
            "-".to_owned()
        } else {
            row.reasons.join(",")
        };
        println!(
            "{:<24} {:<8} {:<9} {:<9} {:<7} {:<24} {}",
            row.name,
            row.backend.map_or("-", |k| k.name()),
            row.state.as_str(),
            row.readiness.unwrap_or("-"),
            if row.needs_restart { "yes" } else { "no" },
            reasons,
            row.running.map_or("-".into(), |p| p.display().to_string())
        );
    }
    Ok(())
}
