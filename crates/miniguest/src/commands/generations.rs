use anyhow::Result;

use crate::cli::GenerationsArgs;
use crate::commands::{parse_name, print_json};
use crate::guest::Layout;
use crate::nix::profile::Profile;

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Row {
    generation: u64,
    created: String,
    store_path: String,
    current: bool,
}

pub fn run(layout: &Layout, args: GenerationsArgs) -> Result<()> {
    let name = parse_name(&args.name)?;
    let profile_path = layout.profile(&name);
    let generations = Profile::new(&profile_path).generations()?;
    if generations.is_empty() {
        anyhow::bail!("guest {name} has no generations (is it installed imperatively?)");
    }
    let rows: Vec<Row> = generations
        .into_iter()
        .map(|g| Row {
            generation: g.number,
            created: humantime::format_rfc3339_seconds(g.created).to_string(),
            store_path: g.store_path.display().to_string(),
            current: g.current,
        })
        .collect();
    if args.json {
        return print_json(&rows);
    }
    for row in rows {
        let mark = if row.current { "   (current)" } else { "" };
        println!(
            "{:>5}   {}   {}{mark}",
            row.generation, row.created, row.store_path
        );
    }
    Ok(())
}
