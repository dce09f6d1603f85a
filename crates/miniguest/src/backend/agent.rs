//! The QEMU guest agent's protocol (qemu-ga, JSON over the virtio-serial
//! port `org.qemu.guest_agent.0`): running a command in a VM guest with
//! `guest-exec` and reading how it ended with `guest-exec-status`. Both VM
//! backends speak it: plain QEMU over the agent's socket (`SocketAgent`),
//! libvirt through its own agent API, in the helper.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use serde_json::{json, Value};

use super::exec::{ExecOutcome, ExecRequest};

/// The virtio-serial port's name, which qemu-ga opens in the guest.
pub const PORT: &str = "org.qemu.guest_agent.0";

/// `env` in the guest's system (NixOS's, and the stand-in's).
const GUEST_ENV: &str = "/run/current-system/sw/bin/env";

/// One way to reach a guest's agent.
pub trait Transport {
    /// Sends one command and returns its `return` value, or the agent's
    /// error in its words.
    fn call(&mut self, command: &Value, timeout: Duration) -> Result<Value>;
}

/// Runs the request in the guest and waits until it exits (or the deadline
/// passes: the command then keeps running in the guest).
pub fn exec(
    agent: &mut dyn Transport,
    request: &ExecRequest,
    deadline: Option<Instant>,
) -> Result<ExecOutcome> {
    if request.argv.is_empty() {
        bail!("no command to run in the guest");
    }
    // qemu-ga looks a program up in its own PATH, which is not the
    // guest's: `env` sets the guest's and finds it there.
    let args: Vec<String> = request
        .env()
        .into_iter()
        .chain(request.argv.iter().cloned())
        .collect();
    let b64 = &base64::engine::general_purpose::STANDARD;
    let mut arguments = json!({
        "path": GUEST_ENV,
        "arg": args,
        "capture-output": true,
    });
    if !request.input.is_empty() {
        arguments["input-data"] = json!(b64.encode(&request.input));
    }
    let left = |deadline: Option<Instant>| {
        deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(30))
            .max(Duration::from_millis(100))
    };
    let started = agent.call(
        &json!({"execute": "guest-exec", "arguments": arguments}),
        left(deadline),
    )?;
    let pid = started["pid"]
        .as_i64()
        .context("the guest agent gave no pid for the command")?;
    let mut pause = Duration::from_millis(10);
    loop {
        let status = agent.call(
            &json!({"execute": "guest-exec-status", "arguments": {"pid": pid}}),
            left(deadline),
        )?;
        if status["exited"].as_bool() == Some(true) {
            let data = |key: &str| -> Result<Vec<u8>> {
                match status[key].as_str() {
                    Some(text) => b64
                        .decode(text)
                        .with_context(|| format!("the guest agent's {key} is not base64")),
                    None => Ok(vec![]),
                }
            };
            let code = match (status["exitcode"].as_i64(), status["signal"].as_i64()) {
                (Some(code), _) => code as i32,
                (None, Some(signal)) => 128 + signal as i32,
                (None, None) => bail!("the guest agent said neither exit code nor signal"),
            };
            return Ok(ExecOutcome {
                status: code,
                stdout: data("out-data")?,
                stderr: data("err-data")?,
            });
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            bail!("the command did not finish in time (it goes on in the guest)");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// The agent on a Unix socket QEMU listens on (`miniguest run`'s chardev).
pub struct SocketAgent {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl SocketAgent {
    /// Connects and synchronises: whatever an earlier client left half
    /// said is discarded, so that the next answer is ours.
    pub fn connect(socket: &Path, timeout: Duration) -> Result<SocketAgent> {
        let stream = UnixStream::connect(socket)
            .with_context(|| format!("cannot reach the guest agent at {}", socket.display()))?;
        let writer = stream.try_clone()?;
        let mut agent = SocketAgent {
            reader: BufReader::new(stream),
            writer,
        };
        agent.sync(timeout)?;
        Ok(agent)
    }

    fn sync(&mut self, timeout: Duration) -> Result<()> {
        // Any number this connection has not seen; the answer must echo it.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let id = (u64::from(std::process::id()) << 32) | u64::from(nanos);
        // 0xFF resets the agent's parser; the answer is preceded by one too.
        self.writer.write_all(&[0xff])?;
        self.send(&json!({"execute": "guest-sync-delimited", "arguments": {"id": id}}))?;
        self.reader.get_ref().set_read_timeout(Some(timeout))?;
        let mut skipped = Vec::new();
        self.reader
            .read_until(0xff, &mut skipped)
            .context("the guest agent does not answer (is qemu-ga running in the guest?)")?;
        loop {
            let answer = self.receive()?;
            if answer["return"].as_u64() == Some(id) {
                return Ok(());
            }
        }
    }

    fn send(&mut self, command: &Value) -> Result<()> {
        let mut line = serde_json::to_vec(command)?;
        line.push(b'\n');
        self.writer.write_all(&line)?;
        Ok(())
    }

    fn receive(&mut self) -> Result<Value> {
        let mut line = String::new();
        let read = self
            .reader
            .read_line(&mut line)
            .context("the guest agent did not answer in time")?;
        if read == 0 {
            bail!("the guest agent closed its channel");
        }
        serde_json::from_str(line.trim_start_matches('\u{ff}'))
            .with_context(|| format!("the guest agent said something unreadable: {line:?}"))
    }
}

impl Transport for SocketAgent {
    fn call(&mut self, command: &Value, timeout: Duration) -> Result<Value> {
        self.reader.get_ref().set_read_timeout(Some(timeout))?;
        self.send(command)?;
        answer(self.receive()?)
    }
}

/// An agent's answer: its `return` value, or its error.
pub fn answer(reply: Value) -> Result<Value> {
    if let Some(error) = reply.get("error") {
        let desc = error["desc"]
            .as_str()
            .unwrap_or("an error without description");
        return Err(anyhow!("the guest agent refused: {desc}"));
    }
    reply
        .get("return")
        .cloned()
        .ok_or_else(|| anyhow!("the guest agent's answer has no return value: {reply}"))
}
