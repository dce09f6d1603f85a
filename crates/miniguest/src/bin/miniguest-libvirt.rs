//! Defines a libvirt domain from XML on stdin: `miniguest-libvirt URI`.
//! A separate program so that only `create --define` pays for loading
//! libvirt and its ~50 shared libraries; every other command starts in a
//! millisecond.

use std::io::Read;

use anyhow::{Context, Result};

fn main() {
    if let Err(e) = define() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn define() -> Result<()> {
    let uri = std::env::args()
        .nth(1)
        .context("usage: miniguest-libvirt URI < domain.xml")?;
    let mut xml = String::new();
    std::io::stdin().read_to_string(&mut xml)?;
    let conn = virt::connect::Connect::open(Some(&uri))
        .with_context(|| format!("cannot connect to libvirt at {uri}"))?;
    conn.define_domain_xml(&xml)
        .context("libvirt refused the domain")?;
    Ok(())
}
