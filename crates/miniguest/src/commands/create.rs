use anyhow::{bail, Result};

use crate::backends::idmap::{self, IdMap};
use crate::backends::lxc::{default_lxcpath, Container};
use crate::backends::nspawn::Machine;
use crate::backends::{libvirt, qemu, GuestSpec};
use crate::cli::{Backend, CreateArgs};
use crate::commands::parse_name;
use crate::formats::shell;
use crate::layout::Layout;
use crate::manifest::{GuestType, ShareFs};

pub fn run(layout: &Layout, args: CreateArgs) -> Result<()> {
    let name = parse_name(&args.name)?;
    let spec = GuestSpec::resolve(layout, &name, &args.hypervisor)?;
    let backend = args.backend.unwrap_or(match spec.manifest.guest_type {
        GuestType::Qemu => Backend::Libvirt,
        GuestType::Lxc => Backend::Lxc,
    });
    if args.xml && backend != Backend::Libvirt {
        bail!("--xml is for the libvirt backend; use --config");
    }
    let print_config = args.xml || args.config;

    match backend {
        Backend::Libvirt => {
            if args.define {
                libvirt::define(&spec, &args.connect)?;
                eprintln!(
                    "defined libvirt domain {name}; start it with: virsh -c {} start {}",
                    shell::quote(&args.connect),
                    shell::quote(name.as_str())
                );
            } else if print_config {
                print!("{}", libvirt::domain_xml(&spec)?);
            } else {
                print!("{}", spec.volume_setup_script()?);
                match libvirt::virt_install(&spec, &args.connect) {
                    Ok(argv) => println!("{}", shell::join(&argv)),
                    Err(e) if e.is::<libvirt::Unquotable>() => {
                        eprintln!("note: {e}; printing a virsh script instead");
                        print!("{}", libvirt::virsh_script(&spec, &args.connect)?);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Backend::Qemu => {
            if args.define || print_config {
                bail!("plain QEMU keeps no configuration: run the printed command, or `miniguest run`");
            }
            // A private directory for virtiofsd's sockets, made now so that
            // the printed command never uses a guessable path in /tmp.
            let sockets = if spec.manifest.store_fs == ShareFs::Virtiofs {
                tempfile::Builder::new()
                    .prefix("miniguest-sockets")
                    .tempdir()?
                    .keep()
            } else {
                std::env::temp_dir()
            };
            print!("{}", spec.volume_setup_script()?);
            print!("{}", qemu::script(&qemu::invocation(&spec, &sockets)?));
        }
        Backend::Lxc => {
            let container = Container {
                spec: &spec,
                lxcpath: args.lxcpath.clone().unwrap_or_else(default_lxcpath),
                idmap: root_map(args.unsafe_unmapped_root)?,
            };
            if args.define {
                container.define()?;
                eprintln!(
                    "defined LXC container {name}; start it with: lxc-start -P {} -n {}",
                    shell::quote(&container.lxcpath.display().to_string()),
                    shell::quote(name.as_str())
                );
            } else if print_config {
                print!("{}", container.config()?);
            } else {
                print!("{}", container.script()?);
            }
        }
        Backend::Nspawn => {
            if args.define || print_config {
                bail!("systemd-nspawn is configured by its command line here: run the printed command");
            }
            let machine = Machine {
                spec: &spec,
                idmap: root_map(args.unsafe_unmapped_root)?,
            };
            print!("{}", machine.script()?);
        }
    }
    Ok(())
}

fn root_map(unsafe_unmapped_root: bool) -> Result<Option<IdMap>> {
    if unsafe_unmapped_root {
        eprintln!("warning: the container's root is the host's root; it can write to the host's Nix store");
        return Ok(None);
    }
    idmap::for_root_on_host().map(Some)
}
