//! `--host`: a second host on this machine (`scripts/second-host.sh`: a
//! clean Debian 12 root with its own /nix/store, sshd and LXC, in a network
//! namespace of its own behind a veth pair), and every command carried to
//! it from here. The guest is the systemd stand-in: built here, copied
//! with Nix's remote store, run there by LXC, asked there by systemd.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::standin::{self, unique_name};
use crate::common::{sha256_hex, stderr, stdout, TestEnv};

/// The second host, stopped and deleted when dropped.
struct SecondHost {
    dir: PathBuf,
    address: String,
}

impl SecondHost {
    fn start(dir: &Path) -> SecondHost {
        let out = Command::new(script())
            .args(["start", dir.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "second-host.sh start: {}",
            stderr(&out)
        );
        SecondHost {
            dir: dir.to_owned(),
            address: stdout(&out).trim().to_owned(),
        }
    }

    /// What every ssh from here to it is told: its key, its host key.
    fn ssh_opts(&self) -> String {
        format!("-F {}", self.dir.join("ssh_config").display())
    }

    /// A command run on it as root, not through Miniguest.
    fn ssh(&self, command: &str) -> std::process::Output {
        Command::new("ssh")
            .args(["-F", self.dir.join("ssh_config").to_str().unwrap()])
            .arg(&self.address)
            .arg(command)
            .output()
            .unwrap()
    }
}

impl Drop for SecondHost {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .args(["stop", self.dir.to_str().unwrap()])
            .status();
    }
}

fn script() -> PathBuf {
    standin::repo_root().join("scripts/second-host.sh")
}

/// Miniguest on this machine, with the second host's ssh settings.
fn run(env: &TestEnv, host: &SecondHost, args: &[&str]) -> std::process::Output {
    env.cmd()
        .env("NIX_SSHOPTS", host.ssh_opts())
        .args(args)
        .output()
        .unwrap()
}

fn set_params(env: &TestEnv, params: serde_json::Value) {
    std::fs::write(env.flake_dir().join("params.json"), params.to_string()).unwrap();
}

/// Miniguest here, in the background.
fn spawn(env: &TestEnv, host: &SecondHost, args: &[&str]) -> std::process::Child {
    let mut cmd = env.std_cmd();
    cmd.env("NIX_SSHOPTS", host.ssh_opts())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().unwrap()
}

/// The same, its stdout in a file to watch.
fn spawn_to(env: &TestEnv, host: &SecondHost, args: &[&str], out: &Path) -> std::process::Child {
    let mut cmd = env.std_cmd();
    cmd.env("NIX_SSHOPTS", host.ssh_opts())
        .args(args)
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(Stdio::piped());
    cmd.spawn().unwrap()
}

/// Its output once it exits; killed, and the test failed, if it does not.
fn finish_within(mut child: std::process::Child, limit: Duration) -> std::process::Output {
    let exited = until(limit, || child.try_wait().unwrap().is_some());
    if !exited {
        let _ = child.kill();
        link(true);
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        exited,
        "still running after {} s: {}",
        limit.as_secs(),
        stderr(&out)
    );
    out
}

fn until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn running_with(pattern: &str) -> bool {
    Command::new("pgrep")
        .args(["-f", pattern])
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// The network to the host goes away and Miniguest's ssh connections are
/// killed (the master and its clients name its socket's directory): with
/// the link down, neither ssh nor Nix (which reconnects on
/// its own) can connect again.
fn cut_the_network() {
    link(false);
    let _ = Command::new("pkill")
        .args(["-KILL", "-f", "miniguest-ssh\\."])
        .status();
}

/// The veth end on this side (scripts/second-host.sh) up or down.
fn link(up: bool) {
    let status = Command::new("ip")
        .args(["link", "set", "mg2host0", if up { "up" } else { "down" }])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The guest's current generation there.
fn current_generation(env: &TestEnv, host: &SecondHost, name: &str) -> u64 {
    let out = run(
        env,
        host,
        &["--host", &host.address, "generations", name, "--json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let current: Vec<u64> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["current"] == true)
        .map(|g| g["generation"].as_u64().unwrap())
        .collect();
    assert_eq!(current.len(), 1, "{rows}");
    current[0]
}

#[test]
fn a_second_host_runs_every_command_from_here() {
    if let Some(why) = standin::missing(&[
        ("lxc-start", standin::which("lxc-start")),
        ("ssh", standin::which("ssh")),
        ("ip (iproute2)", standin::which("ip")),
    ]) {
        eprintln!("skipped: {why}");
        return;
    }
    let env = standin::systemd_env();
    let host = SecondHost::start(&env.path("second-host"));
    let h = host.address.as_str();
    let name = unique_name("web");
    // Miniguest here, told to act there; and a command in the guest there.
    let there = |args: &[&str]| {
        let mut all = vec!["--host", h];
        all.extend_from_slice(args);
        run(&env, &host, &all)
    };
    let in_guest = |command: &[&str]| {
        let mut all = vec!["exec", name.as_str(), "--"];
        all.extend_from_slice(command);
        there(&all)
    };

    // Its store is its own: nothing of the guest is there yet.
    let out = there(&[
        "install",
        &format!("{}#ctsd", env.flake_dir().display()),
        "-n",
        &name,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("generation 1"), "{}", stdout(&out));
    assert!(stderr(&out).contains("copying path"), "{}", stderr(&out));
    assert!(!env.link(&name).exists(), "installed here, not there");
    let installed = host.ssh(&format!("readlink -f /etc/miniguests/{name}/boot/init && test -x /nix/var/nix/profiles/miniguest-profiles/{name}/boot/init"));
    assert!(installed.status.success(), "{}", stderr(&installed));

    // Unchanged: a second install copies nothing.
    let out = there(&[
        "install",
        "--force",
        &format!("{}#ctsd", env.flake_dir().display()),
        "-n",
        &name,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("copying path"), "{}", stderr(&out));

    // Credentials are files of that host, read there.
    let token = format!("token-{}", unique_name("there"));
    let key = format!("key-{}", unique_name("there"));
    let wrote = host.ssh(&format!(
        "mkdir -p /root/secrets && printf %s {token} > /root/secrets/token && printf %s {key} > /root/secrets/key"
    ));
    assert!(wrote.status.success(), "{}", stderr(&wrote));
    let out = there(&[
        "create",
        &name,
        "--define",
        "--credential",
        "api-token=/root/secrets/token",
        "--credential",
        "ssh-host-key=/root/secrets/key",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("defined LXC container"),
        "{}",
        stdout(&out)
    );

    let out = there(&["start", &name, "--wait=120"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = in_guest(&["systemctl", "is-system-running"]);
    assert_eq!(stdout(&out).trim(), "running", "{}", stderr(&out));
    let out = in_guest(&["systemd-creds", "--system", "cat", "api-token"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sha256_hex(&out.stdout), sha256_hex(token.as_bytes()));
    // exec passes the guest command's status on.
    let out = in_guest(&["sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));

    // An upgrade built here, switched to there: its new unit starts.
    set_params(
        &env,
        serde_json::json!({ "version": "1", "unit": "starts" }),
    );
    let out = there(&["upgrade", "--switch", "--wait=60", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("without a reboot"),
        "{}",
        stdout(&out)
    );
    let out = in_guest(&["systemctl", "is-active", "standin-added"]);
    assert_eq!(stdout(&out).trim(), "active", "{}", stderr(&out));

    let switched = current_generation(&env, &host, &name);

    // A checked upgrade whose unit fails is rolled back there.
    set_params(&env, serde_json::json!({ "version": "1", "unit": "fails" }));
    let out = there(&["upgrade", "--switch", "--wait=60", &name]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("reports degraded")
            && stderr(&out).contains(&format!("rolled back to generation {switched}")),
        "{}",
        stderr(&out)
    );
    assert_eq!(current_generation(&env, &host, &name), switched);
    let out = in_guest(&["systemctl", "is-system-running"]);
    assert_eq!(stdout(&out).trim(), "running", "{}", stderr(&out));

    // A copy cut off (the network gone, ssh killed): the host is left as it
    // was.
    set_params(
        &env,
        serde_json::json!({ "version": "1", "unit": "starts", "ballast": 96 }),
    );
    let copying = spawn(&env, &host, &["--host", h, "upgrade", &name]);
    assert!(
        until(Duration::from_secs(300), || running_with(&format!(
            "ssh-ng://{h} .*miniguest-ctsd"
        ))),
        "the copy never started"
    );
    cut_the_network();
    let out = finish_within(copying, Duration::from_secs(120));
    link(true);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("copying to its store failed"),
        "{}",
        stderr(&out)
    );
    assert!(!stdout(&out).contains("upgraded"), "{}", stdout(&out));
    assert_eq!(current_generation(&env, &host, &name), switched);

    // A checked upgrade whose connection is lost while the guest switches:
    // it goes on there, finds the guest degraded and rolls it back.
    set_params(
        &env,
        serde_json::json!({ "version": "1", "unit": "slowfails" }),
    );
    let log = env.path("cut-off.out");
    let cut_off = spawn_to(
        &env,
        &host,
        &["--host", h, "upgrade", "--switch", "--wait=60", &name],
        &log,
    );
    assert!(
        until(Duration::from_secs(300), || std::fs::read_to_string(&log)
            .is_ok_and(|s| s.contains("upgraded to generation"))),
        "the upgrade never got there"
    );
    std::thread::sleep(Duration::from_millis(500));
    cut_the_network();
    let out = finish_within(cut_off, Duration::from_secs(120));
    link(true);
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("rolled back"),
        "it saw the end: {}",
        stderr(&out)
    );
    assert!(
        until(Duration::from_secs(60), || {
            current_generation(&env, &host, &name) == switched
                && stdout(&in_guest(&["systemctl", "is-system-running"])).trim() == "running"
        }),
        "the host did not roll the guest back"
    );
    let said = host.ssh("cat /tmp/miniguest-run.*/err");
    assert!(stdout(&said).contains("rolled back"), "{}", stdout(&said));

    // Built there (--build-host) from what was evaluated here, installed
    // here: its build log is there, not here.
    let version = unique_name("built-there");
    set_params(&env, serde_json::json!({ "version": version }));
    let here = unique_name("built");
    let out = run(
        &env,
        &host,
        &[
            "--build-host",
            h,
            "install",
            &format!("{}#ctsd", env.flake_dir().display()),
            "-n",
            &here,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let output = env.current_output(&here);
    let log =
        format!("find /nix/var/log/nix/drvs -name '*-miniguest-ctsd-{version}.drv*' | grep -q .");
    let logged_there = host.ssh(&log);
    assert!(logged_there.status.success(), "no build log there");
    let logged_here = Command::new("sh").args(["-c", &log]).status().unwrap();
    assert!(!logged_here.success(), "built here");
    assert!(host
        .ssh(&format!("test -e {}", output.display()))
        .status
        .success());
    let out = env.run(&["remove", &here]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Both hosts at once, each row told its host; then one that is gone.
    let out = run(
        &env,
        &host,
        &["--host", "local", "--host", h, "status", "--json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ours: Vec<&serde_json::Value> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"] == name.as_str())
        .collect();
    assert_eq!(ours.len(), 1, "{rows}");
    assert_eq!(ours[0]["host"], h, "{rows}");
    assert_eq!(ours[0]["state"], "running", "{rows}");
    let out = there(&["--host", "gone", "list"]);
    assert!(!out.status.success());
    assert!(stdout(&out).contains(&name), "{}", stdout(&out));
    let said = stderr(&out);
    let errors: Vec<&str> = said.lines().filter(|l| l.contains("gone")).collect();
    assert_eq!(errors.len(), 1, "{}", stderr(&out));
    assert!(
        errors[0].starts_with("error: host gone: cannot connect"),
        "{}",
        stderr(&out)
    );

    // Rolled back by hand, stopped, removed: there, not here.
    let out = there(&["rollback", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(current_generation(&env, &host, &name) < switched);
    let out = there(&["stop", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = there(&["remove", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    let gone = host.ssh(&format!(
        "test -e /etc/miniguests/{name} || test -e /var/lib/lxc/{name}"
    ));
    assert!(!gone.status.success(), "the guest is still there");
}
