//! Reaching into a running guest: the channel its backend offers (or the
//! agent socket of `miniguest run`), whether it has finished booting, and
//! switching it to another generation.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::defined;
use crate::backend::exec::{ExecIo, ExecOutcome, ExecRequest, Readiness};
use crate::backend::{qemu, Backend};
use crate::contract::Manifest;
use crate::guest::{booted, GuestName, Layout};

/// A running guest, and the backend whose channel reaches it.
pub struct Channel {
    pub name: GuestName,
    pub backend: Box<dyn Backend>,
    /// The manifest of what it runs now.
    pub manifest: Manifest,
}

impl Channel {
    pub fn open(layout: &Layout, name: &GuestName) -> Result<Channel> {
        let backend: Box<dyn Backend> = match defined(layout, name)? {
            Some(guest) => guest.backend,
            None if qemu::invocation::agent_socket(name).exists() => Box::new(qemu::Qemu),
            None => bail!(
                "guest {name} is neither defined in a hypervisor nor running under `miniguest run`"
            ),
        };
        Channel::with_backend(layout, name, backend)
    }

    pub fn with_backend(
        layout: &Layout,
        name: &GuestName,
        backend: Box<dyn Backend>,
    ) -> Result<Channel> {
        let output = booted::running(name).unwrap_or_else(|| layout.link(name));
        let manifest = Manifest::load(&output)?;
        if backend.kind().capabilities().exec_through_agent && !manifest.agent {
            bail!(
                "guest {name} runs no QEMU guest agent (boot.miniguest.guestAgent.enable): nothing reaches into it"
            );
        }
        Ok(Channel {
            name: name.clone(),
            backend,
            manifest,
        })
    }

    pub fn exec(&self, request: &ExecRequest, io: ExecIo) -> Result<ExecOutcome> {
        self.backend
            .exec(&self.name, request, io)
            .with_context(|| format!("cannot run a command in guest {}", self.name))
    }

    /// The guest's word on its boot, asked once; None when it has no
    /// readiness command.
    pub fn readiness(&self, limit: Duration) -> Option<Readiness> {
        let command = self.manifest.ready_command.clone()?;
        Some(
            self.exec(&ExecRequest::new(command), ExecIo::capture_for(limit))
                .map(|outcome| Readiness::from_output(&outcome))
                // No answer yet (the agent is not up, the init has not
                // started): not ready.
                .unwrap_or(Readiness::NotReady),
        )
    }

    /// Asks until the guest says it has booted (running or degraded), at
    /// most `limit`; what it said last.
    pub fn wait_ready(&self, limit: Duration) -> Result<Readiness> {
        if self.manifest.ready_command.is_none() {
            bail!(
                "guest {} says no readiness command (boot.miniguest.readyCommand)",
                self.name
            );
        }
        let deadline = Instant::now() + limit;
        // A container is often ready within tens of milliseconds and a VM
        // takes seconds: ask soon, then back off to a gentle pace.
        let mut pause = Duration::from_millis(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let said = self
                .readiness(left.max(Duration::from_millis(200)))
                .expect("a readiness command");
            if said != Readiness::NotReady || Instant::now() >= deadline {
                return Ok(said);
            }
            std::thread::sleep(pause.min(left));
            pause = (pause * 2).min(Duration::from_millis(300));
        }
    }

    /// Applies the system at `toplevel` (its `switch-to-configuration
    /// switch`) inside the guest, printing what it printed.
    pub fn switch_to(&self, toplevel: &Path) -> Result<()> {
        let program = toplevel.join("bin/switch-to-configuration");
        let request = ExecRequest::new(vec![
            program.to_string_lossy().into_owned(),
            "switch".into(),
        ]);
        let outcome = self.exec(&request, ExecIo::capture_for(Duration::from_secs(600)))?;
        use std::io::Write;
        let _ = std::io::stderr().write_all(&outcome.stderr);
        let _ = std::io::stdout().write_all(&outcome.stdout);
        if outcome.status != 0 {
            bail!(
                "switch-to-configuration failed in guest {} (exit status {})",
                self.name,
                outcome.status
            );
        }
        Ok(())
    }
}
