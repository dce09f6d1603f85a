use anyhow::{bail, Result};

use crate::backends::idmap::{self, IdMap};
use crate::backends::lxc::{default_lxcpath, Container};
use crate::backends::nspawn::Machine;
use crate::backends::{exposure, idmapped, libvirt, lifecycle, qemu, GuestSpec};
use crate::cli::{Backend, CreateArgs};
use crate::commands::parse_name;
use crate::formats::shell;
use crate::layout::Layout;
use crate::manifest::GuestType;
use crate::placement::{self, Location, Placement};

pub fn run(layout: &Layout, args: CreateArgs) -> Result<()> {
    let name = parse_name(&args.name)?;
    let spec = GuestSpec::resolve(layout, &name, &args.hypervisor.to_spec_options())?;
    let backend = args.backend.unwrap_or(match spec.manifest.guest_type {
        GuestType::Qemu => Backend::Libvirt,
        GuestType::Lxc => Backend::Lxc,
    });
    if args.xml && backend != Backend::Libvirt {
        bail!("--xml is for the libvirt backend; use --config");
    }
    let print_config = args.xml || args.config;
    // The network a guest gets when it asks for none in particular.
    let spec = match backend {
        Backend::Libvirt => spec.with_network(|| libvirt::default_network(&args.connect))?,
        Backend::Qemu => spec.with_network(|| Ok(qemu::default_network()))?,
        Backend::Lxc | Backend::Nspawn => spec.with_network(|| Ok(vec![]))?,
    };

    // Everything is generated before anything is printed or applied, so a
    // refusal never follows half an output.
    let exposure = exposure::describe(&spec, backend_uses_images(backend))?;
    match backend {
        Backend::Libvirt => {
            if args.define {
                eprint!("{exposure}");
                let location = Location::Libvirt {
                    uri: args.connect.clone(),
                };
                define(layout, &spec, &args, location, None)?;
            } else if print_config {
                emit(&exposure, &libvirt::domain_xml(&spec)?);
            } else {
                let mut text = spec.volume_setup_script()?;
                match libvirt::virt_install(&spec, &args.connect) {
                    Ok(argv) => text.push_str(&format!("{}\n", shell::join(&argv))),
                    Err(e) if e.is::<libvirt::Unquotable>() => {
                        eprintln!("note: {e}; printing a virsh script instead");
                        text.push_str(&libvirt::virsh_script(&spec, &args.connect)?);
                    }
                    Err(e) => return Err(e),
                }
                emit(&exposure, &text);
            }
        }
        Backend::Qemu => {
            if args.define || print_config {
                bail!("plain QEMU keeps no configuration: run the printed command, or `miniguest run`");
            }
            let mut text = spec.volume_setup_script()?;
            text.push_str(&qemu::script(&spec)?);
            emit(&exposure, &text);
        }
        Backend::Lxc => {
            let container = Container {
                spec: &spec,
                lxcpath: args.lxcpath.clone().unwrap_or_else(default_lxcpath),
                idmap: root_map(args.unsafe_unmapped_root)?,
                autostart: args.autostart,
            };
            if let Some(why) = container
                .idmap
                .and_then(|m| container.program_view_error(m))
            {
                idmapped::warn_unmapped(&why);
            }
            if args.define {
                eprint!("{exposure}");
                let location = Location::Lxc {
                    lxcpath: container.lxcpath.clone(),
                };
                define(layout, &spec, &args, location, container.idmap)?;
            } else if print_config {
                emit(&exposure, &container.config()?);
            } else {
                emit(&exposure, &container.script()?);
            }
        }
        Backend::Nspawn => {
            let machine = Machine {
                spec: &spec,
                idmap: root_map(args.unsafe_unmapped_root)?,
            };
            if let Some(why) = machine.idmap.and_then(|m| machine.program_view_error(m)) {
                idmapped::warn_unmapped(&why);
            }
            if args.define {
                eprint!("{exposure}");
                let location = Location::Nspawn {
                    settings_dir: args.nspawn_dir.clone(),
                    machines_dir: args.machines_dir.clone(),
                    units_dir: args.unit_dir.clone(),
                };
                define(layout, &spec, &args, location, machine.idmap)?;
            } else if print_config {
                emit(&exposure, &machine.settings()?);
            } else {
                emit(&exposure, &machine.script()?);
            }
        }
    }
    Ok(())
}

/// Defines (or redefines) the guest through its backend, and records where
/// it lives and with which options, for start, stop, status and remove.
fn define(
    layout: &Layout,
    spec: &GuestSpec,
    args: &CreateArgs,
    location: Location,
    idmap: Option<IdMap>,
) -> Result<()> {
    let _lock = crate::lock::lock(layout, &spec.name)?;
    let backend = lifecycle::for_location(&location, idmap, args.autostart);
    let verdict = backend.define(spec)?;
    let what = match location {
        Location::Libvirt { .. } => "libvirt domain",
        Location::Lxc { .. } => "LXC container",
        Location::Nspawn { .. } => "nspawn machine",
    };
    placement::write(
        layout,
        &spec.name,
        &Placement {
            written: backend.definition(spec)?,
            location,
            options: args.hypervisor.to_spec_options(),
            autostart: args.autostart,
            unsafe_unmapped_root: args.unsafe_unmapped_root,
        },
    )?;
    println!("{} {what} {}", verdict.as_str(), spec.name);
    eprintln!("start it with: miniguest start {}", spec.name);
    if args.autostart && what == "nspawn machine" {
        eprintln!(
            "note: nspawn machines start with the host once enabled: machinectl enable {}",
            spec.name
        );
    }
    Ok(())
}

/// VMs get volumes as disk images; containers as directories.
fn backend_uses_images(backend: Backend) -> bool {
    matches!(backend, Backend::Libvirt | Backend::Qemu)
}

/// What the guest reaches on standard error, the output on standard output.
fn emit(exposure: &str, output: &str) {
    eprint!("{exposure}");
    print!("{output}");
}

fn root_map(unsafe_unmapped_root: bool) -> Result<Option<IdMap>> {
    if unsafe_unmapped_root {
        eprintln!("warning: the container's root is the host's root; it can write to the host's Nix store");
        return Ok(None);
    }
    idmap::for_root_on_host().map(Some)
}
