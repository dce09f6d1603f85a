//! Day three, on real backends: a command run in a running guest (LXC's
//! lxc-attach; the real qemu-ga under libvirt and plain QEMU), readiness,
//! switching a running guest to a new generation without a reboot, and
//! upgrades that roll themselves back when the guest does not come up.

use std::time::Duration;

use crate::common::standin::{self, set_version, unique_name, wait_for_reports, Domain};
use crate::common::{stderr, stdout, TestEnv};
use crate::helpers::*;

use crate::helpers::exec_in as exec;

/// What a command printed in the guest, which must succeed.
fn inside(env: &TestEnv, name: &str, args: &[&str]) -> String {
    let out = exec(env, name, args);
    assert!(out.status.success(), "exec {args:?}: {}", stderr(&out));
    stdout(&out).trim().to_owned()
}

fn boot_id(env: &TestEnv, name: &str) -> String {
    inside(env, name, &["cat", "/proc/sys/kernel/random/boot_id"])
}

/// The version of the system the guest runs now.
fn version_inside(env: &TestEnv, name: &str) -> String {
    inside(env, name, &["cat", "/run/current-system/nixos-version"])
}

fn current_generation(env: &TestEnv, name: &str) -> u64 {
    let link = std::fs::read_link(env.profile(name)).unwrap();
    link.to_string_lossy()
        .strip_prefix(&format!("{name}-"))
        .and_then(|s| s.strip_suffix("-link"))
        .unwrap()
        .parse()
        .unwrap()
}

/// The stand-in's parameters: its version and an extra kernel parameter.
fn set_params(env: &TestEnv, version: &str, kernel_param: Option<&str>) {
    let mut params = serde_json::json!({ "version": version });
    if let Some(p) = kernel_param {
        params["kernelParam"] = p.into();
    }
    std::fs::write(env.flake_dir().join("params.json"), params.to_string()).unwrap();
}

/// A stand-in that stays up, installed, defined (`extra` says where) and
/// started with `start --wait`, which returns only once the guest says it
/// has finished booting.
fn started(attr: &str, extra: &[&str], needs: &[(&str, bool)]) -> Option<(TestEnv, String)> {
    let (env, name) = installed_standin(attr, attr, needs)?;
    define_with(&env, &name, &env.path("console.log"), extra);
    let out = env.run(&["start", &name, "--wait=90"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("guest {name} is ready")),
        "{}",
        stdout(&out)
    );
    // It waited: the guest says it has booted, as soon as start returned.
    assert_eq!(
        inside(&env, &name, &["cat", "/run/standin-state"]),
        "running"
    );
    let s = status(&env, &name);
    assert_eq!(s["ready"], true, "{s}");
    assert_eq!(s["readiness"], "running", "{s}");
    Some((env, name))
}

/// Stops and forgets the guest, whatever the test left it in.
struct Cleanup<'a>(&'a TestEnv, &'a str);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.0.run(&["stop", "--force", self.1]);
        let _ = self.0.run(&["remove", "--force", self.1]);
    }
}

fn lxcpath_args(env: &TestEnv) -> Vec<String> {
    vec!["--lxcpath".into(), env.path("lxc").to_str().unwrap().into()]
}

fn exec_passes_output_and_status(env: &TestEnv, name: &str) {
    let out = exec(env, name, &["sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(stdout(&out), "out\n");
    assert!(stderr(&out).contains("err"), "{}", stderr(&out));
    // Standard input reaches the command (containers: passed through).
    let out = env
        .cmd()
        .args(["exec", name, "--", "cat"])
        .write_stdin("piped in\n")
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "piped in\n");
}

/// `miniguest console` on a pseudo-terminal (util-linux's `script`): it
/// prints how to detach, what the guest writes to `device` arrives, and
/// the `detach` keys end it with success.
fn console_attaches(env: &TestEnv, name: &str, device: &str, detach: &[u8]) {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};
    let command = format!(
        "{} console {name}",
        assert_cmd::cargo::cargo_bin("miniguest").display()
    );
    let mut script = std::process::Command::new("script");
    script
        .args(["-qfec", &command, "/dev/null"])
        .envs(env.nix_env())
        .env_remove("NIX_CONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = script.spawn().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut stdout = child.stdout.take().unwrap();
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let saw = |what: &str, secs: u64| {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        while std::time::Instant::now() < deadline {
            if String::from_utf8_lossy(&seen.lock().unwrap()).contains(what) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    };
    let text = || String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    assert!(saw("detach with", 30), "no detach hint: {}", text());
    let probe = format!("CONSOLE-PROBE-{}", std::process::id());
    // The hypervisor's tool attaches after the hint: write until it shows.
    let mut arrived = false;
    for _ in 0..10 {
        inside(
            env,
            name,
            &["sh", "-c", &format!("echo {probe} > {device}")],
        );
        if saw(&probe, 3) {
            arrived = true;
            break;
        }
    }
    assert!(
        arrived,
        "the guest's console line never arrived: {}",
        text()
    );
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(detach).unwrap();
    stdin.flush().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            panic!("the detach keys did not end the console: {}", text());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(stdin);
    let _ = reader.join();
    assert!(status.success(), "console after detach: {status}");
}

#[test]
fn exec_and_readiness_on_lxc() {
    in_own_lxcpath(|lxcpath| {
        let Some((env, name)) = started("ctstay", lxcpath, &[]) else {
            return;
        };
        let _cleanup = Cleanup(&env, &name);
        exec_passes_output_and_status(&env, &name);
        console_attaches(&env, &name, "/dev/console", b"\x01q");
    });
}

fn exec_on_libvirt(attr: &str) {
    let Some((env, name)) = started(attr, &[], &[libvirt_needed()]) else {
        return;
    };
    let _domain = Domain(name.clone());
    exec_passes_output_and_status(&env, &name);
    console_attaches(&env, &name, "/dev/ttyS0", b"\x1d");
}

#[test]
fn exec_and_readiness_on_libvirt_9p() {
    exec_on_libvirt("vmstay");
}

#[test]
fn exec_and_readiness_on_libvirt_virtiofs() {
    exec_on_libvirt("vmstayfs");
}

/// A guest `miniguest run` boots in one terminal is reached from another,
/// through the agent socket run gave QEMU.
#[test]
fn exec_reaches_a_guest_under_run() {
    use std::os::unix::process::CommandExt;
    let Some((env, name)) = installed_standin("vmstay", "vmrun", &[]) else {
        return;
    };
    let log = env.path("run.log");
    let mut run = env.std_cmd();
    run.args([
        "run",
        &name,
        "--network",
        "none",
        "--console-log",
        log.to_str().unwrap(),
    ])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .process_group(0);
    let child = run.spawn().unwrap();
    let _kill = KillGroup(child);
    wait_for_reports(&log, 1, BOOT_TIMEOUT);
    let mut ok = false;
    for _ in 0..100 {
        // The agent starts right after the report.
        let out = exec(&env, &name, &["sh", "-c", "exit 7"]);
        if out.status.code() == Some(7) {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(ok, "exec never reached the guest under run");
    assert_eq!(
        inside(&env, &name, &["cat", "/run/current-system/nixos-version"]),
        "1"
    );
}

/// A guest that never says it has booted makes `start --wait` fail, naming
/// it, when the time is up.
#[test]
fn start_wait_fails_for_a_guest_that_never_gets_ready() {
    if !lxc_ready() {
        return;
    }
    let env = standin::env();
    let name = unique_name("ctnever");
    set_version(&env, "1-never");
    install(&env, "ctstay", &name);
    let _cleanup = Cleanup(&env, &name);
    let mut define = vec!["create", name.as_str(), "--define"];
    let lxc = lxcpath_args(&env);
    define.extend(lxc.iter().map(String::as_str));
    assert!(env.run(&define).status.success());
    let t0 = std::time::Instant::now();
    let out = env.run(&["start", &name, "--wait=5"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&format!("guest {name} did not become ready within 5 s")),
        "{}",
        stderr(&out)
    );
    assert!(t0.elapsed() >= Duration::from_secs(5), "it did not wait");
    let s = status(&env, &name);
    assert_eq!(s["state"], "running", "{s}");
    assert_eq!(s["ready"], false, "{s}");
}

/// `upgrade --switch`: version 1 to 2, where only stage 2 differs, applied
/// inside the running guest (same boot); both closures kept; a change of
/// kernel parameters restarts it instead, or is refused with --no-restart.
fn switch_without_a_reboot(attr: &str, extra: &[&str], needs: &[(&str, bool)]) {
    let Some((env, name)) = started(attr, extra, needs) else {
        return;
    };
    let _cleanup = Cleanup(&env, &name);
    let _domain = attr.starts_with("vm").then(|| Domain(name.clone()));
    let before = boot_id(&env, &name);
    let first = status(&env, &name)["booted"].as_str().unwrap().to_owned();

    set_version(&env, "2");
    let out = env.run(&["upgrade", "--switch", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("without a reboot"),
        "{}",
        stdout(&out)
    );
    assert_eq!(boot_id(&env, &name), before, "the guest rebooted");
    assert_eq!(version_inside(&env, &name), "2");
    let s = status(&env, &name);
    let second = env.current_output(&name);
    assert_eq!(s["booted"], first.as_str(), "{s}");
    assert_eq!(s["running"], second.to_str().unwrap(), "{s}");
    assert_eq!(s["needsRestart"], false, "{s}");
    // Nothing the running guest uses may be collected: its /boot still
    // shows what it booted, and it runs what it was switched to.
    forget_old_generations(&env, &name);
    assert!(
        !collectable(&env, &name, &first),
        "the booted closure was collectable"
    );
    assert!(
        !collectable(&env, &name, second.to_str().unwrap()),
        "the switched-to closure was collectable"
    );

    // Kernel parameters need a boot: refused with --no-restart, and the
    // profile stays as it was.
    set_params(&env, "3", Some("standin.extra=1"));
    let generation = current_generation(&env, &name);
    let out = env.run(&["upgrade", "--switch", "--no-restart", &name]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("kernelParams"), "{}", stderr(&out));
    assert_eq!(current_generation(&env, &name), generation);
    assert_eq!(version_inside(&env, &name), "2");
    // Without it, the guest restarts into version 3.
    let out = env.run(&["upgrade", "--switch", "--wait=90", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("restarted"), "{}", stdout(&out));
    assert_ne!(boot_id(&env, &name), before, "the guest was not restarted");
    assert_eq!(version_inside(&env, &name), "3");
}

#[test]
fn upgrade_switch_on_lxc() {
    in_own_lxcpath(|lxcpath| switch_without_a_reboot("ctstay", lxcpath, &[]));
}

#[test]
fn upgrade_switch_on_libvirt() {
    switch_without_a_reboot("vmstay", &[], &[libvirt_needed()]);
}

/// A checked upgrade (`--wait`) to a version that never gets ready puts
/// the profile back at its old generation and the guest back at version 1,
/// and fails naming the guest: through a restart, and through a switch.
fn rolled_back(attr: &str, extra: &[&str], needs: &[(&str, bool)], how: &str) {
    let Some((env, name)) = started(attr, extra, needs) else {
        return;
    };
    let _cleanup = Cleanup(&env, &name);
    let _domain = attr.starts_with("vm").then(|| Domain(name.clone()));
    let generation = current_generation(&env, &name);
    set_version(&env, "2-never");
    // A VM under TCG on a busy host may take more than ten seconds to be
    // up again after the roll-back, which the same limit bounds.
    let wait = if attr.starts_with("vm") {
        "--wait=30"
    } else {
        "--wait=10"
    };
    let out = env.run(&["upgrade", how, wait, &name]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&format!("{name}: the upgraded guest failed its check")),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("rolled back"), "{}", stderr(&out));
    assert_eq!(
        current_generation(&env, &name),
        generation,
        "the profile was not put back"
    );
    assert_eq!(version_inside(&env, &name), "1");
    let s = status(&env, &name);
    assert_eq!(s["ready"], true, "{s}");
    assert_eq!(s["needsRestart"], false, "{s}");
}

#[test]
fn a_checked_restart_that_never_gets_ready_is_rolled_back() {
    in_own_lxcpath(|lxcpath| rolled_back("ctstay", lxcpath, &[], "--restart"));
}

#[test]
fn a_checked_switch_that_never_gets_ready_is_rolled_back() {
    in_own_lxcpath(|lxcpath| rolled_back("ctstay", lxcpath, &[], "--switch"));
}

#[test]
fn a_checked_libvirt_restart_that_never_gets_ready_is_rolled_back() {
    rolled_back("vmstay", &[], &[libvirt_needed()], "--restart");
}
