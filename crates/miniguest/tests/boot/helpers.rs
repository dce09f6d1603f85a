//! What the boot tests share: installing the stand-in, defining it, reading
//! its reports, and the day-two walk every backend takes.

use std::time::Duration;

use crate::common::standin::{
    self, libvirt_up, missing, set_version, unique_name, wait_for_reports, Domain,
};
use crate::common::{stderr, stdout, TestEnv};

pub const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

pub fn install(env: &TestEnv, attr: &str, name: &str) {
    let out = env.run(&["install", "--force", "-n", name, &env.flake(attr)]);
    assert!(out.status.success(), "install {attr}: {}", stderr(&out));
}

/// `create NAME --define --console-log LOG`, which must succeed; what it
/// printed.
pub fn define_with_console_log(env: &TestEnv, name: &str, log: &std::path::Path) -> String {
    define_with(env, name, log, &[])
}

/// The same, with more options.
pub fn define_with(env: &TestEnv, name: &str, log: &std::path::Path, extra: &[&str]) -> String {
    let mut args = vec![
        "create",
        name,
        "--define",
        "--console-log",
        log.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = env.run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_no_libvirt_noise(&out);
    stdout(&out)
}

/// libvirt's own error printer stays quiet: a look-up that misses (a new
/// domain, one undefined behind Miniguest's back) is no error.
pub fn assert_no_libvirt_noise(out: &std::process::Output) {
    assert!(
        !stderr(out).lines().any(|l| l.starts_with("libvirt:")),
        "libvirt printed errors: {}",
        stderr(out)
    );
}

pub fn libvirt_needed() -> (&'static str, bool) {
    (
        "libvirtd on qemu:///system (scripts/services.sh start)",
        libvirt_up(),
    )
}

/// The stand-in installed as a fresh guest, or None (with the reason
/// printed) where boot tests cannot run.
pub fn installed_standin(
    attr: &str,
    prefix: &str,
    needs: &[(&str, bool)],
) -> Option<(TestEnv, String)> {
    if missing(needs).is_some() {
        return None;
    }
    let env = standin::env();
    let name = unique_name(prefix);
    install(&env, attr, &name);
    Some((env, name))
}

/// Inside a container whose root is mapped, the program belongs to the
/// container's root (idmapped), and its store cannot be remounted
/// read-write.
pub fn assert_program_root_owned_and_locked(report: &standin::Report) {
    assert_program_read_only(report);
    assert_eq!(report.store_owner, "0:0", "store not root's: {report:?}");
    assert_eq!(report.boot_owner, "0:0", "/boot not root's: {report:?}");
    assert_eq!(
        report.remount_rw, "refused",
        "the container remounted its store read-write: {report:?}"
    );
}

pub fn assert_program_read_only(report: &standin::Report) {
    assert_eq!(report.store_writable, "no", "{report:?}");
    assert_eq!(report.boot_writable, "no", "{report:?}");
    assert_eq!(
        report.remount, "no",
        "the guest made the store writable: {report:?}"
    );
}

/// A guests directory whose path holds quotes, a command substitution and
/// the characters virt-install mangles: names are plain now, but paths a
/// user chooses are not.
pub fn odd_guests_dir(env: &TestEnv) -> std::path::PathBuf {
    let dir = env.path("odd'$(touch${IFS}PWNED);x\"y,z&w");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `miniguest run NAME` with the console in a file; every boot it holds.
pub fn run_to_reports(env: &TestEnv, name: &str, log: &std::path::Path) -> Vec<standin::Report> {
    let out = env
        .cmd()
        .args(["run", name, "--console-log", log.to_str().unwrap()])
        .timeout(BOOT_TIMEOUT)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "run {name}: {}\n{}\nconsole:\n{}",
        out.status,
        stderr(&out),
        std::fs::read_to_string(log).unwrap_or_default()
    );
    standin::reports(&std::fs::read_to_string(log).unwrap())
}

/// A libvirt domain defined with `extra` options and started, by hand
/// (`virsh start`, so the hook does what `start` would) or by `start`;
/// the domain (undefined when dropped) and the boot it printed.
pub fn boot_libvirt(
    env: &TestEnv,
    name: &str,
    extra: &[&str],
    by_hand: bool,
) -> (standin::Domain, Vec<standin::Report>) {
    let log = env.path(&format!("{name}.log"));
    let domain = standin::Domain(name.to_owned());
    define_with(env, name, &log, extra);
    if by_hand {
        domain.start();
    } else {
        let out = env.run(&["start", name]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let reports = standin::wait_for_reports(&log, 1, BOOT_TIMEOUT);
    (domain, reports)
}

/// `miniguest exec NAME -- ARGS…`, given a minute.
pub fn exec_in(env: &TestEnv, name: &str, args: &[&str]) -> std::process::Output {
    let mut argv = vec!["exec", "--timeout", "60", name, "--"];
    argv.extend_from_slice(args);
    env.run(&argv)
}

/// Defines the container, twice: the second time changes nothing.
pub fn lxc_define(env: &TestEnv, name: &str, lxcpath: &std::path::Path, log: &std::path::Path) {
    lxc_define_with(env, name, lxcpath, log, &[]);
}

/// The same, with more options.
pub fn lxc_define_with(
    env: &TestEnv,
    name: &str,
    lxcpath: &std::path::Path,
    log: &std::path::Path,
    extra: &[&str],
) {
    for verdict in ["defined", "unchanged"] {
        let mut args = vec![
            "create",
            name,
            "--define",
            "--lxcpath",
            lxcpath.to_str().unwrap(),
            "--console-log",
            log.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = env.run(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out), format!("{verdict} LXC container {name}\n"));
    }
}

/// Where systemd-nspawn reads a machine's `.nspawn` settings (machined
/// being absent here).
const NSPAWN_SETTINGS: &str = "/run/systemd/nspawn";

/// Machine `name`'s `.nspawn` settings, removed when dropped.
pub struct NspawnSettings(std::path::PathBuf);

impl NspawnSettings {
    pub fn of(name: &str) -> Self {
        NspawnSettings(std::path::Path::new(NSPAWN_SETTINGS).join(format!("{name}.nspawn")))
    }
}

impl Drop for NspawnSettings {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `create -t nspawn --define NAME EXTRA…` with the settings where
/// systemd-nspawn reads them and the rest in the test's directory.
pub fn nspawn_define(env: &TestEnv, name: &str, extra: &[&str]) -> std::process::Output {
    env.cmd()
        .args(["create", "-t", "nspawn", "--define"])
        .args(extra)
        .arg(name)
        .env("MINIGUEST_NSPAWN_DIR", NSPAWN_SETTINGS)
        .env("MINIGUEST_MACHINES_DIR", env.path("machines"))
        .env("MINIGUEST_UNIT_DIR", env.path("units"))
        .output()
        .unwrap()
}

/// systemd-nspawn on the defined machine, with nothing on its command line
/// but the machine and its directory: what it does comes from the settings.
pub fn nspawn_run_defined(env: &TestEnv, name: &str) -> std::process::Output {
    let image = env.path("machines").join(name).canonicalize().unwrap();
    std::process::Command::new("timeout")
        .args([
            "60",
            "systemd-nspawn",
            "--quiet",
            "--settings=trusted",
            "--register=no",
            "--keep-unit",
        ])
        .arg(format!("--machine={name}"))
        .arg(format!("--directory={}", image.display()))
        .output()
        .unwrap()
}

/// Runs a defined container in the foreground until its init exits, and
/// returns every boot its console log holds.
pub fn lxc_start(
    lxcpath: &std::path::Path,
    name: &str,
    log: &std::path::Path,
) -> Vec<standin::Report> {
    let start = std::process::Command::new("timeout")
        .args([
            "60",
            "lxc-start",
            "-P",
            lxcpath.to_str().unwrap(),
            "-n",
            name,
            "-F",
        ])
        .output()
        .unwrap();
    assert!(start.status.success(), "lxc-start: {}", stderr(&start));
    standin::reports(&std::fs::read_to_string(log).unwrap())
}

/// The stand-in installed as a fresh guest and defined as an LXC container
/// (twice), with its LXC path and console log; None where LXC cannot run.
pub fn defined_container(
    attr: &str,
) -> Option<(TestEnv, String, std::path::PathBuf, std::path::PathBuf)> {
    if !lxc_ready() {
        return None;
    }
    let env = standin::env();
    let name = unique_name(attr);
    install(&env, attr, &name);
    let lxcpath = env.path("lxc");
    let log = env.path("ct.log");
    lxc_define(&env, &name, &lxcpath, &log);
    Some((env, name, lxcpath, log))
}

/// The stand-in container installed for nspawn (which also needs root's
/// subordinate range); None where nspawn cannot run.
pub fn nspawn_container(prefix: &str) -> Option<(TestEnv, String)> {
    if !lxc_ready() || missing(&[("systemd-nspawn", standin::which("systemd-nspawn"))]).is_some() {
        return None;
    }
    let env = standin::env();
    let name = unique_name(prefix);
    install(&env, "ct", &name);
    Some((env, name))
}

/// Runs `test` with the options that keep a container in an LXC path of
/// its own; nothing where LXC cannot run.
pub fn in_own_lxcpath(test: impl FnOnce(&[&str])) {
    if !lxc_ready() {
        return;
    }
    let lxcpath = tempfile::tempdir().unwrap();
    test(&["--lxcpath", lxcpath.path().to_str().unwrap()]);
}

/// Deletes every generation of guest `name`'s profile but the current one,
/// as `nix-env --delete-generations old` does.
pub fn forget_old_generations(env: &TestEnv, name: &str) {
    let deleted = std::process::Command::new("nix-env")
        .envs(env.nix_env())
        .arg("--profile")
        .arg(env.profile(name))
        .args(["--delete-generations", "old"])
        .output()
        .unwrap();
    assert!(deleted.status.success(), "{}", stderr(&deleted));
}

pub fn lxc_ready() -> bool {
    missing(&[
        ("lxc-start", standin::which("lxc-start")),
        (
            "a subuid range for root",
            std::fs::read_to_string("/etc/subuid").is_ok_and(|s| s.contains("root:")),
        ),
    ])
    .is_none()
}

pub fn status(env: &TestEnv, name: &str) -> serde_json::Value {
    let out = env.run(&["status", name, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    rows[0].clone()
}

/// Whether this test's guest no longer keeps the path from Nix's garbage
/// collector: none of the roots that reach it (`nix-store --query --roots`)
/// is the guest's profile, its booted or switched root, or anything else
/// in this test's directory. Other tests install the same fixture outputs
/// at the same time, so their roots are left out rather than the path
/// deleted, and no whole-store collection runs.
pub fn collectable(env: &TestEnv, name: &str, path: &str) -> bool {
    let roots = std::process::Command::new("nix-store")
        .envs(env.nix_env())
        .args(["--query", "--roots", path])
        .output()
        .unwrap();
    assert!(roots.status.success(), "{}", stderr(&roots));
    let guest_roots = [
        format!("{GC_ROOTS}/{name}"),
        format!("{GC_ROOTS}/switched/{name}"),
    ];
    let test_dir = env.path("");
    let ours: Vec<String> = stdout(&roots)
        .lines()
        .filter(|line| {
            let link = line.split(" -> ").next().unwrap_or_default();
            guest_roots.iter().any(|root| link == root)
                || std::path::Path::new(link).starts_with(&test_dir)
        })
        .map(str::to_string)
        .collect();
    if !ours.is_empty() {
        eprintln!("{path} is kept by: {ours:?}");
    }
    ours.is_empty()
}

/// Where Miniguest keeps a running guest's roots on the machine's store.
const GC_ROOTS: &str = "/nix/var/nix/gcroots/miniguest";

/// Day two on one backend: define twice, start, status, upgrade, the
/// booted closure kept while it runs, restart into the new version, stop,
/// the old closure collectable, remove undefining.
pub fn day_two(
    attr: &str,
    extra_define: &[&str],
    needs: &[(&str, bool)],
    restart_args: &[&str],
    redefine: &[&str],
) {
    let Some((env, name)) = installed_standin(attr, attr, needs) else {
        return;
    };
    let log = env.path(&format!("{name}.log"));
    let _domain = Domain(name.clone());
    let mut define = vec![
        "create",
        name.as_str(),
        "--define",
        "--console-log",
        log.to_str().unwrap(),
    ];
    define.extend_from_slice(extra_define);
    for verdict in ["defined", "unchanged"] {
        let out = env.run(&define);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_no_libvirt_noise(&out);
        assert!(stdout(&out).starts_with(verdict), "{}", stdout(&out));
    }
    let s = status(&env, &name);
    assert_eq!(s["state"], "stopped", "{s}");

    let out = env.run(&["start", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    let reports = wait_for_reports(&log, 1, BOOT_TIMEOUT);
    assert_eq!(reports.last().unwrap().version, "1");
    let s = status(&env, &name);
    assert_eq!(s["state"], "running", "{s}");
    assert_eq!(s["booted"], s["current"], "{s}");
    assert_eq!(s["needsRestart"], false, "{s}");
    let first = s["booted"].as_str().unwrap().to_owned();

    // Redefined while it runs: it keeps running, and the change is made
    // for its next boot.
    let before = reports.last().unwrap().clone();
    let mut changed = define.clone();
    changed.extend_from_slice(redefine);
    let out = env.run(&changed);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("updated"), "{}", stdout(&out));
    assert_eq!(status(&env, &name)["state"], "running");

    set_version(&env, "2");
    let out = env.run(&["upgrade", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = status(&env, &name);
    assert_eq!(s["needsRestart"], true, "{s}");
    assert_eq!(s["reasons"], serde_json::json!(["stage2"]), "{s}");
    assert_eq!(s["booted"], first.as_str());

    // The profile forgets generation 1; the running guest's root keeps it.
    forget_old_generations(&env, &name);
    assert!(
        !collectable(&env, &name, &first),
        "the booted closure was collectable"
    );
    assert!(std::path::Path::new(&first).exists());

    let _ = std::fs::remove_file(&log);
    let mut restart = vec!["restart", name.as_str()];
    restart.extend_from_slice(restart_args);
    let out = env.run(&restart);
    assert!(out.status.success(), "{}", stderr(&out));
    let reports = wait_for_reports(&log, 1, BOOT_TIMEOUT);
    let after = reports.last().unwrap();
    assert_eq!(after.version, "2", "{reports:?}");
    if attr.starts_with("vm") {
        assert!(
            after.mem_kib.parse::<u64>().unwrap()
                > before.mem_kib.parse::<u64>().unwrap() + 32 * 1024,
            "the new memory size did not reach the next boot: {before:?} {after:?}"
        );
    }
    let s = status(&env, &name);
    assert_eq!(s["needsRestart"], false, "{s}");
    assert_eq!(s["booted"], s["current"], "{s}");

    // Not removed from under itself.
    let out = env.run(&["remove", &name]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is running"), "{}", stderr(&out));

    let out = env.run(&["stop", &name, "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = status(&env, &name);
    assert_eq!(s["state"], "stopped", "{s}");
    assert_eq!(s["booted"], serde_json::Value::Null, "{s}");
    assert!(
        collectable(&env, &name, &first),
        "the old closure outlived its guest"
    );

    let out = env.run(&["remove", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("undefined"), "{}", stdout(&out));
}

/// `miniguest run` and its QEMU, as one process group, ended on drop.
pub struct KillGroup(pub std::process::Child);

impl Drop for KillGroup {
    fn drop(&mut self) {
        if let Some(group) = rustix::process::Pid::from_raw(self.0.id() as i32) {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let _ = self.0.wait();
    }
}
