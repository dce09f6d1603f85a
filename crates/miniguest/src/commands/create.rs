//! `create`: configure a hypervisor to run an installed guest, by printing
//! the command, printing the configuration, or defining it.

use anyhow::{bail, Result};

use crate::backend::store_view::StoreView;
use crate::backend::{self, exposure, GuestSpec, Kind, Location};
use crate::cli::CreateArgs;
use crate::commands::parse_name;
use crate::guest::Layout;
use crate::service::placement::{self, Placement};

pub fn run(layout: &Layout, args: CreateArgs) -> Result<()> {
    let name = parse_name(&args.name)?;
    let spec = GuestSpec::resolve(layout, &name, &args.hypervisor.to_spec_options())?;
    let kind = args
        .backend
        .unwrap_or_else(|| Kind::default_for(spec.manifest.guest_type));
    if args.xml && kind != Kind::Libvirt {
        bail!("--xml is for the libvirt backend; use --config");
    }
    if spec.store_view == StoreView::Closure && !args.define {
        bail!("--store-view closure: a printed command cannot build the view; use --define (or `miniguest run`)");
    }
    let backend = backend::open(&Location::of(kind, &args.site_options()), args.policy())?;
    let spec = backend.prepare(&spec)?;

    // Everything is generated before anything is printed or applied, so a
    // refusal never follows half an output.
    let exposure = exposure::describe(&spec, kind.capabilities().volumes)?;
    let caveats = backend.caveats(&spec)?;
    let output = if args.define {
        None
    } else if args.xml || args.config {
        Some(backend.definition(&spec)?)
    } else {
        Some(backend.command(&spec)?)
    };
    for caveat in &caveats {
        eprintln!("warning: {caveat}");
    }
    eprint!("{exposure}");
    match output {
        Some(text) => print!("{text}"),
        None => define(layout, &spec, &args, backend.as_ref())?,
    }
    Ok(())
}

/// Defines (or redefines) the guest through its backend, and records where
/// it lives and with which options, for start, stop, status and remove.
fn define(
    layout: &Layout,
    spec: &GuestSpec,
    args: &CreateArgs,
    backend: &dyn backend::Backend,
) -> Result<()> {
    let _lock = crate::guest::lock::lock(layout, &spec.name)?;
    let change = backend.define(spec)?;
    placement::write(
        layout,
        &spec.name,
        &Placement {
            written: backend.definition(spec)?,
            location: backend.location(),
            options: args.hypervisor.to_spec_options(),
            autostart: args.autostart,
            unsafe_unmapped_root: args.unsafe_unmapped_root,
        },
    )?;
    println!(
        "{} {} {}",
        change.as_str(),
        backend.kind().object(),
        spec.name
    );
    eprintln!("start it with: miniguest start {}", spec.name);
    Ok(())
}
