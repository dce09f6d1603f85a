//! Talks to libvirt for `miniguest`. A separate program so that only the
//! commands that need libvirt pay for loading it and its ~50 shared
//! libraries; every other command starts in a millisecond. What it is asked
//! and what it answers are `backend::libvirt::protocol`'s types; its errors
//! are one line on standard error.

use std::io::Read;

use anyhow::{Context, Result};
use std::time::{Duration, Instant};

use miniguest::backend::agent::{self, Transport};
use miniguest::backend::exec::ExecRequest;
use miniguest::backend::libvirt::protocol::{Action, Answer, Request};
use miniguest::backend::{Change, State};
use virt::connect::Connect;
use virt::domain::Domain;

fn main() {
    // libvirt's default handler prints every error, including the "domain
    // not found" of a look-up that is expected to miss. Real errors reach
    // the user once, as this program's one line, which miniguest reports.
    virt::error::clear_error_callback();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = Request::from_args(&args)
        .map_err(anyhow::Error::msg)
        .and_then(|request| answer(&request));
    match result {
        Ok(answer) => print!("{answer}"),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

/// The guest agent through libvirt, which holds the agent's channel.
struct LibvirtAgent(Domain);

impl Transport for LibvirtAgent {
    fn call(
        &mut self,
        command: &serde_json::Value,
        timeout: Duration,
    ) -> Result<serde_json::Value> {
        let seconds = timeout.as_secs().clamp(1, i32::MAX as u64) as i32;
        let reply = self
            .0
            .qemu_agent_command(&command.to_string(), seconds, 0)
            .context("the guest agent does not answer (is qemu-ga running in the guest?)")?;
        agent::answer(serde_json::from_str(&reply).context("unreadable agent answer")?)
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

fn answer(request: &Request) -> Result<Answer> {
    Ok(match request {
        Request::Uuid { uri, name } => Answer::Uuid(
            connect(uri)?
                .lookup_domain_by_name(name)
                .ok()
                .map(|d| d.uuid_string())
                .transpose()?,
        ),
        Request::Define {
            uri,
            name,
            autostart,
        } => {
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
            if *autostart {
                domain.set_autostart(true)?;
            }
            let after = inactive_xml(&domain)?;
            Answer::Defined(match before {
                None => Change::Defined,
                Some(b) if b == after => Change::Unchanged,
                Some(_) => Change::Updated,
            })
        }
        Request::HasNetwork { uri, name } => Answer::Network(
            connect(uri)?
                .list_networks()
                .map(|names| names.iter().any(|n| n == name))
                .unwrap_or(false),
        ),
        // One connection for all: `status` asks about many guests.
        Request::States { uri, names } => {
            let conn = connect(uri)?;
            let states = names
                .iter()
                .map(|name| {
                    Ok(match conn.lookup_domain_by_name(name) {
                        Err(_) => State::Undefined,
                        Ok(domain) if domain.is_active()? => State::Running,
                        Ok(_) => State::Stopped,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Answer::States(states)
        }
        Request::Exec {
            uri,
            name,
            deadline_ms,
        } => {
            let mut input = String::new();
            std::io::stdin().read_to_string(&mut input)?;
            let request: ExecRequest =
                serde_json::from_str(&input).context("unreadable exec request")?;
            let domain = connect(uri)?
                .lookup_domain_by_name(name)
                .with_context(|| format!("no libvirt domain {name}"))?;
            let deadline = deadline_ms.map(|ms| Instant::now() + Duration::from_millis(ms));
            Answer::Exec(agent::exec(&mut LibvirtAgent(domain), &request, deadline)?)
        }
        Request::Act { action, uri, name } => {
            let domain = connect(uri)?
                .lookup_domain_by_name(name)
                .with_context(|| format!("no libvirt domain {name}"))?;
            match action {
                Action::Start => domain.create()?,
                Action::Shutdown => domain.shutdown()?,
                Action::Destroy => domain.destroy()?,
                Action::Undefine => domain.undefine()?,
            };
            Answer::Done
        }
    })
}
