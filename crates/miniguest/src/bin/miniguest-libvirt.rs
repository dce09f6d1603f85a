//! Talks to libvirt for `miniguest create --define`. A separate program so
//! that only defining pays for loading libvirt and its ~50 shared
//! libraries; every other command starts in a millisecond.
//!
//! ```text
//! miniguest-libvirt uuid URI NAME                 prints the domain's UUID, if it exists
//! miniguest-libvirt define URI NAME [--autostart] < XML   prints defined, updated or unchanged
//! miniguest-libvirt states URI NAME…              prints running, stopped or undefined, one a line
//! miniguest-libvirt has-network URI NAME          prints yes if that network is active
//! miniguest-libvirt start|shutdown|destroy|undefine URI NAME
//! ```

use std::io::Read;

use anyhow::{bail, Context, Result};
use virt::connect::Connect;
use virt::domain::Domain;

fn main() {
    // libvirt's default handler prints every error, including the "domain
    // not found" of a look-up that is expected to miss. Real errors reach
    // the user once, as this program's one line, which miniguest reports.
    virt::error::clear_error_callback();
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn connect(uri: &str) -> Result<Connect> {
    Connect::open(Some(uri)).with_context(|| format!("cannot connect to libvirt at {uri}"))
}

/// The definition libvirt would use at the domain's next boot, as libvirt
/// writes it (so two equal definitions compare equal).
fn inactive_xml(domain: &Domain) -> Result<String> {
    Ok(domain.xml_desc(virt::sys::VIR_DOMAIN_XML_INACTIVE)?)
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["uuid", uri, name] => {
            if let Ok(domain) = connect(uri)?.lookup_domain_by_name(name) {
                println!("{}", domain.uuid_string()?);
            }
            Ok(())
        }
        ["define", uri, name, rest @ ..] => {
            let autostart = match rest {
                [] => false,
                ["--autostart"] => true,
                _ => bail!("usage: miniguest-libvirt define URI NAME [--autostart] < domain.xml"),
            };
            let mut xml = String::new();
            std::io::stdin().read_to_string(&mut xml)?;
            let conn = connect(uri)?;
            let before = match conn.lookup_domain_by_name(name) {
                Ok(domain) => Some(inactive_xml(&domain)?),
                Err(_) => None,
            };
            // On a running domain this changes the persistent definition
            // only: the change applies at the next boot.
            let domain = conn
                .define_domain_xml(&xml)
                .context("libvirt refused the domain")?;
            if autostart {
                domain.set_autostart(true)?;
            }
            let after = inactive_xml(&domain)?;
            let verdict = match before {
                None => "defined",
                Some(b) if b == after => "unchanged",
                Some(_) => "updated",
            };
            println!("{verdict}");
            Ok(())
        }
        ["has-network", uri, name] => {
            let active = connect(uri)?
                .list_networks()
                .map(|names| names.iter().any(|n| n == name))
                .unwrap_or(false);
            println!("{}", if active { "yes" } else { "no" });
            Ok(())
        }
        ["states", uri, names @ ..] => {
            // One connection for all: `status` asks about many guests.
            let conn = connect(uri)?;
            for name in names {
                let state = match conn.lookup_domain_by_name(name) {
                    Err(_) => "undefined",
                    Ok(domain) if domain.is_active()? => "running",
                    Ok(_) => "stopped",
                };
                println!("{state}");
            }
            Ok(())
        }
        [verb @ ("start" | "shutdown" | "destroy" | "undefine"), uri, name] => {
            let domain = connect(uri)?
                .lookup_domain_by_name(name)
                .with_context(|| format!("no libvirt domain {name}"))?;
            match *verb {
                "start" => domain.create()?,
                "shutdown" => domain.shutdown()?,
                "destroy" => domain.destroy()?,
                _ => domain.undefine()?,
            }
            Ok(())
        }
        _ => bail!("usage: miniguest-libvirt uuid|start|shutdown|destroy|undefine URI NAME | states URI NAME… | define URI NAME [--autostart] < domain.xml"),
    }
}
