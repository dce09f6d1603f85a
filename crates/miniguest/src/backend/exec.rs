//! Running a command inside a running guest, the same for every backend:
//! what is asked (`ExecRequest`), what comes back (`ExecOutcome`), and the
//! environment commands get. Each backend brings its own channel (LXC's
//! lxc-attach, nspawn's nsenter, the QEMU guest agent for VMs); readiness
//! and `upgrade --switch` run through it.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The PATH a command finds its program in: NixOS's, which the stand-in
/// guest mirrors.
pub const GUEST_PATH: &str = "/run/wrappers/bin:/run/current-system/sw/bin";

/// A command to run in the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    /// The program (looked up in `GUEST_PATH`) and its arguments.
    pub argv: Vec<String>,
    /// What the command reads on its standard input.
    #[serde(default, with = "bytes")]
    pub input: Vec<u8>,
}

impl ExecRequest {
    pub fn new(argv: Vec<String>) -> ExecRequest {
        ExecRequest {
            argv,
            input: vec![],
        }
    }

    /// The environment the command gets.
    pub fn env(&self) -> Vec<String> {
        vec![format!("PATH={GUEST_PATH}"), "HOME=/root".into()]
    }
}

/// How a command exited, and what it printed (when captured).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOutcome {
    /// Its exit status; 128 + N for a command killed by signal N.
    pub status: i32,
    #[serde(default, with = "bytes")]
    pub stdout: Vec<u8>,
    #[serde(default, with = "bytes")]
    pub stderr: Vec<u8>,
}

/// Whether the command's output is captured (with a deadline) or goes
/// straight to this terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecIo {
    Capture {
        deadline: Option<Instant>,
    },
    /// Standard input, output and error are this process's; channels that
    /// cannot pass them through capture and print instead.
    Inherit,
}

impl ExecIo {
    pub fn capture_for(limit: Duration) -> ExecIo {
        ExecIo::Capture {
            deadline: Some(Instant::now() + limit),
        }
    }

    pub fn deadline(self) -> Option<Instant> {
        match self {
            ExecIo::Capture { deadline } => deadline,
            ExecIo::Inherit => None,
        }
    }
}

/// The guest's word on whether it has finished booting: the first word
/// its readiness command printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Readiness {
    /// `running`: booted, every unit up.
    Ready,
    /// `degraded`: booted, some unit failed.
    Degraded,
    /// Anything else (`starting`, no answer yet).
    NotReady,
}

impl Readiness {
    pub fn from_output(outcome: &ExecOutcome) -> Readiness {
        let text = String::from_utf8_lossy(&outcome.stdout);
        match text.split_whitespace().next() {
            Some("running") => Readiness::Ready,
            Some("degraded") => Readiness::Degraded,
            _ => Readiness::NotReady,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Readiness::Ready => "running",
            Readiness::Degraded => "degraded",
            Readiness::NotReady => "starting",
        }
    }
}

/// Bytes as base64 in JSON (the QEMU guest agent's own encoding).
pub mod bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

/// Runs a host command that reaches into the guest (lxc-attach, nsenter):
/// with this terminal, or capturing its output until the deadline (then
/// it is killed).
pub fn run_local(
    mut cmd: std::process::Command,
    request: &ExecRequest,
    io: ExecIo,
) -> anyhow::Result<ExecOutcome> {
    use anyhow::Context;
    use std::io::{Read, Write};
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;

    let program = cmd.get_program().to_string_lossy().into_owned();
    let code = |status: std::process::ExitStatus| {
        status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(1)
    };
    let deadline = match io {
        ExecIo::Inherit if request.input.is_empty() => {
            let status = cmd
                .status()
                .with_context(|| format!("cannot run {program}"))?;
            return Ok(ExecOutcome {
                status: code(status),
                ..ExecOutcome::default()
            });
        }
        io => io.deadline(),
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    let mut stdin = child.stdin.take().expect("piped");
    let input = request.input.clone();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("the command did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = writer.join();
    Ok(ExecOutcome {
        status: code(status),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}
