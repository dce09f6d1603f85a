//! `--host`: a second host on this machine (`scripts/second-host.sh`: a
//! clean Debian 12 root with its own /nix/store, sshd and LXC, in a network
//! namespace of its own behind a veth pair), and every command carried to
//! it from here. The guest is the systemd stand-in: built here, copied
//! with Nix's remote store, run there by LXC, asked there by systemd.

use std::path::{Path, PathBuf};
use std::process::Command;

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

    // Its store is its own: nothing of the guest is there yet.
    let out = run(
        &env,
        &host,
        &[
            "--host",
            h,
            "install",
            &format!("{}#ctsd", env.flake_dir().display()),
            "-n",
            &name,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("generation 1"), "{}", stdout(&out));
    assert!(stderr(&out).contains("copying path"), "{}", stderr(&out));
    assert!(!env.link(&name).exists(), "installed here, not there");
    let there = host.ssh(&format!("readlink -f /etc/miniguests/{name}/boot/init && test -x /nix/var/nix/profiles/miniguest-profiles/{name}/boot/init"));
    assert!(there.status.success(), "{}", stderr(&there));

    // Unchanged: a second install copies nothing.
    let out = run(
        &env,
        &host,
        &[
            "--host",
            h,
            "install",
            "--force",
            &format!("{}#ctsd", env.flake_dir().display()),
            "-n",
            &name,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("copying path"), "{}", stderr(&out));

    // Credentials are files of that host, read there.
    let token = format!("token-{}", unique_name("there"));
    let key = format!("key-{}", unique_name("there"));
    let wrote = host.ssh(&format!(
        "mkdir -p /root/secrets && printf %s {token} > /root/secrets/token && printf %s {key} > /root/secrets/key"
    ));
    assert!(wrote.status.success(), "{}", stderr(&wrote));
    let out = run(
        &env,
        &host,
        &[
            "--host",
            h,
            "create",
            &name,
            "--define",
            "--credential",
            "api-token=/root/secrets/token",
            "--credential",
            "ssh-host-key=/root/secrets/key",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("defined LXC container"),
        "{}",
        stdout(&out)
    );

    let out = run(&env, &host, &["--host", h, "start", &name, "--wait=120"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(
        &env,
        &host,
        &[
            "--host",
            h,
            "exec",
            &name,
            "--",
            "systemctl",
            "is-system-running",
        ],
    );
    assert_eq!(stdout(&out).trim(), "running", "{}", stderr(&out));
    let out = run(
        &env,
        &host,
        &[
            "--host",
            h,
            "exec",
            &name,
            "--",
            "systemd-creds",
            "--system",
            "cat",
            "api-token",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sha256_hex(&out.stdout), sha256_hex(token.as_bytes()));
    // exec passes the guest command's status on.
    let out = run(
        &env,
        &host,
        &["--host", h, "exec", &name, "--", "sh", "-c", "exit 7"],
    );
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));

    // An upgrade built here, switched to there: its new unit starts.
    set_params(
        &env,
        serde_json::json!({ "version": "1", "unit": "starts" }),
    );
    let out = run(
        &env,
        &host,
        &["--host", h, "upgrade", "--switch", "--wait=60", &name],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("without a reboot"),
        "{}",
        stdout(&out)
    );
    let out = run(
        &env,
        &host,
        &[
            "--host",
            h,
            "exec",
            &name,
            "--",
            "systemctl",
            "is-active",
            "standin-added",
        ],
    );
    assert_eq!(stdout(&out).trim(), "active", "{}", stderr(&out));

    let switched = current_generation(&env, &host, &name);

    // A checked upgrade whose unit fails is rolled back there.
    set_params(&env, serde_json::json!({ "version": "1", "unit": "fails" }));
    let out = run(
        &env,
        &host,
        &["--host", h, "upgrade", "--switch", "--wait=60", &name],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("reports degraded")
            && stderr(&out).contains(&format!("rolled back to generation {switched}")),
        "{}",
        stderr(&out)
    );
    assert_eq!(current_generation(&env, &host, &name), switched);
    let out = run(
        &env,
        &host,
        &[
            "--host",
            h,
            "exec",
            &name,
            "--",
            "systemctl",
            "is-system-running",
        ],
    );
    assert_eq!(stdout(&out).trim(), "running", "{}", stderr(&out));

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
    let out = run(&env, &host, &["--host", h, "--host", "gone", "list"]);
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
    let out = run(&env, &host, &["--host", h, "rollback", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(current_generation(&env, &host, &name) < switched);
    let out = run(&env, &host, &["--host", h, "stop", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&env, &host, &["--host", h, "remove", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    let gone = host.ssh(&format!(
        "test -e /etc/miniguests/{name} || test -e /var/lib/lxc/{name}"
    ));
    assert!(!gone.status.success(), "the guest is still there");
}
