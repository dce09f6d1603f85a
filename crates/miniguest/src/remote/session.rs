//! One ssh connection to a host for the length of a command: a control
//! master that every ssh this command runs, Nix's included, goes through.
//! The user's own ssh configuration and known_hosts apply (host keys are
//! checked as they say); `NIX_SSHOPTS` adds options, as it does for Nix
//! and `nixos-rebuild`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use super::target::Target;
use crate::formats::shell;
use crate::nix::store_path::StorePath;

/// ssh's exit status when it, not the remote command, failed.
const SSH_FAILED: i32 = 255;

pub struct Session {
    target: Target,
    /// Holds the control socket; removed (after the master is told to
    /// exit) when the session ends.
    control: Option<tempfile::TempDir>,
}

impl Session {
    /// Connects: the master is set up now, so that an unreachable host
    /// fails here, in one line naming it.
    pub fn open(target: &Target) -> Result<Session> {
        let mut session = Session {
            target: target.clone(),
            control: None,
        };
        if matches!(target, Target::Local) {
            return Ok(session);
        }
        // A short path without white space: ssh limits a socket's path to
        // about 100 bytes, and Nix splits NIX_SSHOPTS at white space.
        let tmp = std::env::temp_dir();
        let base =
            if tmp.to_string_lossy().contains(char::is_whitespace) || tmp.as_os_str().len() > 40 {
                PathBuf::from("/tmp")
            } else {
                tmp
            };
        let control = tempfile::Builder::new()
            .prefix("miniguest-ssh.")
            .tempdir_in(base)
            .context("cannot make a directory for the ssh connection")?;
        let log = control.path().join("connect.log");
        session.control = Some(control);
        // The master outlives this ssh (ControlPersist) and keeps its
        // stderr: a file, not a pipe, so that waiting here ends.
        let status = session
            .ssh(false)
            .args(["-o", "ControlMaster=auto", "-o", "ControlPersist=120"])
            .arg("--")
            .arg(target.to_string())
            .arg("true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .status()
            .context("cannot run ssh")?;
        if !status.success() {
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            let last = said.lines().rev().find(|l| !l.trim().is_empty());
            bail!(
                "host {target}: cannot connect with ssh ({})",
                last.map_or_else(|| status.to_string(), |l| l.trim().to_owned())
            );
        }
        Ok(session)
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    fn control_path(&self) -> Option<PathBuf> {
        self.control.as_ref().map(|d| d.path().join("master"))
    }

    /// The options every ssh of this session takes: the user's
    /// NIX_SSHOPTS, then the control socket.
    fn options(&self) -> Vec<String> {
        let mut options: Vec<String> = std::env::var("NIX_SSHOPTS")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if let Some(path) = self.control_path() {
            options.push("-o".into());
            options.push(format!("ControlPath={}", path.display()));
        }
        options
    }

    fn ssh(&self, tty: bool) -> Command {
        let mut ssh = Command::new("ssh");
        ssh.args(self.options());
        ssh.arg(if tty { "-t" } else { "-T" });
        ssh
    }

    /// `argv` on the host: its words quoted by the shell writer, since ssh
    /// hands the remote shell one line. `tty` asks for a terminal there.
    pub fn command(&self, argv: &[String], tty: bool) -> Command {
        match &self.target {
            Target::Local => {
                let mut cmd = Command::new(&argv[0]);
                // This machine's part: the hosts were chosen already.
                cmd.args(&argv[1..])
                    .env_remove("MINIGUEST_HOST")
                    .env_remove("MINIGUEST_BUILD_HOST");
                cmd
            }
            Target::Ssh { .. } => {
                let mut ssh = self.ssh(tty);
                ssh.arg("--")
                    .arg(self.target.to_string())
                    .arg(shell::join_line(argv));
                ssh
            }
        }
    }

    /// Runs `argv` there with this terminal's input and output; its exit
    /// status, or an error naming the host if ssh itself failed.
    pub fn run(&self, argv: &[String], tty: bool) -> Result<i32> {
        tracing::debug!(host = %self.target, ?argv, "running");
        let status = self.command(argv, tty).status().context("cannot run ssh")?;
        self.exit_code(status)
    }

    /// Runs `argv` there so that it finishes even if the connection is
    /// lost: in a session of its own, its output in files the connection
    /// follows (and that stay there if the connection could not take all
    /// of it). A checked upgrade cut off from here still checks, and
    /// still rolls back. The host needs util-linux's `setsid` and GNU
    /// `tail`, as NixOS and Debian have.
    pub fn run_to_the_end(&self, argv: &[String]) -> Result<i32> {
        if matches!(self.target, Target::Local) {
            return self.run(argv, false);
        }
        // The files exist before the tails open them: a tail that finds
        // none gives up, and the output would be lost.
        let script = format!(
            "dir=$(mktemp -d /tmp/miniguest-run.XXXXXX) || exit 1\n\
             : >\"$dir/out\"; : >\"$dir/err\"\n\
             setsid -w {} </dev/null >>\"$dir/out\" 2>>\"$dir/err\" &\n\
             pid=$!\n\
             tail -q -n +1 -s 0.2 --pid=$pid -f \"$dir/out\" & out=$!\n\
             tail -q -n +1 -s 0.2 --pid=$pid -f \"$dir/err\" >&2 & err=$!\n\
             wait $pid; rc=$?\n\
             wait $out && wait $err && rm -rf \"$dir\"\n\
             exit $rc",
            shell::join_line(argv)
        );
        tracing::debug!(host = %self.target, ?argv, "running to the end");
        let status = self
            .ssh(false)
            .arg("--")
            .arg(self.target.to_string())
            .arg(script)
            .stdin(Stdio::null())
            .status()
            .context("cannot run ssh")?;
        self.exit_code(status)
    }

    /// Runs `argv` there and returns what it printed on stdout (stderr
    /// passes through).
    pub fn output(&self, argv: &[String]) -> Result<(i32, Vec<u8>)> {
        tracing::debug!(host = %self.target, ?argv, "running");
        let out = self
            .command(argv, false)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .context("cannot run ssh")?;
        Ok((self.exit_code(out.status)?, out.stdout))
    }

    fn exit_code(&self, status: std::process::ExitStatus) -> Result<i32> {
        match status.code() {
            Some(SSH_FAILED) if self.control.is_some() => {
                bail!("host {}: the ssh connection failed", self.target)
            }
            Some(code) => Ok(code),
            None => bail!("host {}: the command was killed ({status})", self.target),
        }
    }

    /// Copies `paths` and their closures into the host's store, through
    /// this session's connection; Nix sends only what the host lacks.
    /// `quiet` leaves out Nix's report (for this program's own closure,
    /// which is there after the first command and would be reported as
    /// "copying 0 paths" on every one).
    pub fn copy(&self, paths: &[&StorePath], quiet: bool) -> Result<()> {
        let Some(uri) = self.target.store_uri() else {
            return Ok(());
        };
        let mut nix = Command::new("nix");
        nix.args(["--extra-experimental-features", "nix-command", "copy"])
            .args(["--to", &uri])
            // Built here, so unsigned; a host whose Nix does not trust the
            // user refuses them, and says so.
            .arg("--no-check-sigs")
            .args(quiet.then_some("--quiet"))
            .args(paths.iter().map(|p| p.as_path()))
            .env("NIX_SSHOPTS", self.options().join(" "));
        use crate::nix::CommandExt;
        nix.run_checked()
            .with_context(|| format!("host {}: copying to its store failed", self.target))
    }
}

impl Session {
    /// Copies a derivation and its own closure (sources, other
    /// derivations) into the host's store, for its Nix to build.
    pub fn copy_derivation(&self, drv: &StorePath) -> Result<()> {
        let Some(uri) = self.target.store_uri() else {
            return Ok(());
        };
        let mut nix = Command::new("nix");
        nix.args(["--extra-experimental-features", "nix-command", "copy"])
            .args(["--derivation", "--quiet", "--no-check-sigs", "--to", &uri])
            .arg(drv.as_path())
            .env("NIX_SSHOPTS", self.options().join(" "));
        use crate::nix::CommandExt;
        nix.run_checked()
            .with_context(|| format!("build host {}: copying the derivation failed", self.target))
    }

    /// Copies `paths` from `source`'s store into this host's, through this
    /// machine. Each host has a connection of its own; the user's
    /// NIX_SSHOPTS serve both.
    pub fn copy_from(&self, source: &Session, paths: &[&StorePath]) -> Result<()> {
        let Some(from) = source.target.store_uri() else {
            return self.copy(paths, false);
        };
        let mut nix = Command::new("nix");
        nix.args(["--extra-experimental-features", "nix-command", "copy"])
            .args(["--no-check-sigs", "--from", &from]);
        if let Some(to) = self.target.store_uri() {
            nix.args(["--to", &to]);
        }
        nix.args(paths.iter().map(|p| p.as_path()));
        use crate::nix::CommandExt;
        nix.run_checked()
            .with_context(|| format!("copying from {} to {} failed", source.target, self.target))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(path) = self.control_path() {
            if Path::new(&path).exists() {
                let _ = Command::new("ssh")
                    .args(self.options())
                    .args(["-O", "exit", "--", &self.target.to_string()])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}
