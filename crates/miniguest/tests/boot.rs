//! End-to-end: the stand-in guest installed with the CLI and booted by every
//! backend, reading what the guest itself printed.

mod common;

use std::time::Duration;

use common::standin::{
    self, libvirt_up, missing, set_version, unique_name, wait_for_reports, Domain,
};
use common::{stderr, stdout, TestEnv};

const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

fn install(env: &TestEnv, attr: &str, name: &str) {
    let out = env.run(&["install", "--force", "-n", name, &env.flake(attr)]);
    assert!(out.status.success(), "install {attr}: {}", stderr(&out));
}

/// `create NAME --define --console-log LOG`, which must succeed; what it
/// printed.
fn define_with_console_log(env: &TestEnv, name: &str, log: &std::path::Path) -> String {
    let out = env.run(&[
        "create",
        name,
        "--define",
        "--console-log",
        log.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_no_libvirt_noise(&out);
    stdout(&out)
}

/// libvirt's own error printer stays quiet: a look-up that misses (a new
/// domain, one undefined behind Miniguest's back) is no error.
fn assert_no_libvirt_noise(out: &std::process::Output) {
    assert!(
        !stderr(out).lines().any(|l| l.starts_with("libvirt:")),
        "libvirt printed errors: {}",
        stderr(out)
    );
}

fn libvirt_needed() -> (&'static str, bool) {
    (
        "libvirtd on qemu:///system (scripts/services.sh start)",
        libvirt_up(),
    )
}

/// The stand-in installed as a fresh guest, or None (with the reason
/// printed) where boot tests cannot run.
fn installed_standin(
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
fn assert_program_root_owned_and_locked(report: &standin::Report) {
    assert_program_read_only(report);
    assert_eq!(report.store_owner, "0:0", "store not root's: {report:?}");
    assert_eq!(report.boot_owner, "0:0", "/boot not root's: {report:?}");
    assert_eq!(
        report.remount_rw, "refused",
        "the container remounted its store read-write: {report:?}"
    );
}

fn assert_program_read_only(report: &standin::Report) {
    assert_eq!(report.store_writable, "no", "{report:?}");
    assert_eq!(report.boot_writable, "no", "{report:?}");
    assert_eq!(
        report.remount, "no",
        "the guest made the store writable: {report:?}"
    );
}

/// Install, define through the libvirt API, boot; then upgrade and roll
/// back, rebooting each time without redefining the domain.
fn libvirt_lifecycle(attr: &str) {
    let Some((env, name)) = installed_standin(attr, attr, &[libvirt_needed()]) else {
        return;
    };
    let log = env.path(&format!("{name}.log"));
    let domain = Domain(name.clone());
    let define = || define_with_console_log(&env, &name, &log);
    assert_eq!(define(), format!("defined libvirt domain {name}\n"));
    // Defining again is harmless: the same domain, nothing to change.
    assert_eq!(define(), format!("unchanged libvirt domain {name}\n"));

    for (step, version) in [("install", "1"), ("upgrade", "2"), ("rollback", "1")] {
        match step {
            "upgrade" => {
                set_version(&env, "2");
                let out = env.run(&["upgrade", &name]);
                assert!(out.status.success(), "{}", stderr(&out));
            }
            "rollback" => assert!(env.run(&["rollback", &name]).status.success()),
            _ => {}
        }
        // QEMU truncates the console file at each start; removing it first
        // makes sure what we read is this boot's.
        let _ = std::fs::remove_file(&log);
        domain.start();
        let reports = wait_for_reports(&log, 1, BOOT_TIMEOUT);
        let last = reports.last().unwrap();
        assert_eq!(last.name, attr);
        assert_eq!(last.version, version, "after {step}: {reports:?}");
        assert_program_read_only(last);
        domain.wait_shut_off(BOOT_TIMEOUT);
    }

    // Undefined outside Miniguest: status says so, and nothing else.
    let undefined = domain.virsh(&["undefine", &name]);
    assert!(undefined.status.success(), "{}", stderr(&undefined));
    let out = env.run(&["status", &name, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_no_libvirt_noise(&out);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["state"], "undefined", "{rows}");
}

#[test]
fn libvirt_9p_boot_upgrade_rollback() {
    libvirt_lifecycle("vm9p");
}

#[test]
fn libvirt_virtiofs_boot_upgrade_rollback() {
    libvirt_lifecycle("vmfs");
}

/// A guests directory whose path holds quotes, a command substitution and
/// the characters virt-install mangles: names are plain now, but paths a
/// user chooses are not.
fn odd_guests_dir(env: &TestEnv) -> std::path::PathBuf {
    let dir = env.path("odd'$(touch${IFS}PWNED);x\"y,z&w");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the printed libvirt command through sh and reads the boot it causes.
fn libvirt_printed(odd: bool, expect_tool: &str) {
    if missing(&[
        libvirt_needed(),
        ("virt-install", standin::which("virt-install")),
    ])
    .is_some()
    {
        return;
    }
    let env = standin::env();
    let name = unique_name("vi");
    let guests = if odd {
        odd_guests_dir(&env)
    } else {
        env.guests_dir()
    };
    let run = |args: &[&str]| {
        env.cmd()
            .env("MINIGUEST_GUESTS_DIR", &guests)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["install", "-n", &name, &env.flake("vm9p")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let log = env.path("printed.log");
    let _domain = Domain(name.clone());
    let out = run(&["create", &name, "--console-log", log.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with(expect_tool), "{}", stdout(&out));
    let work = env.path("work");
    std::fs::create_dir_all(&work).unwrap();
    let ran = standin::sh_with_timeout(&stdout(&out), &work, 300);
    assert!(
        ran.status.success(),
        "printed command failed: {}\n{}",
        stdout(&out),
        stderr(&ran)
    );
    let reports = wait_for_reports(&log, 1, BOOT_TIMEOUT);
    assert_eq!(reports[0].name, "vm9p");
    assert_program_read_only(&reports[0]);
    assert!(
        !work.join("PWNED").exists(),
        "the printed command ran part of a path"
    );
}

#[test]
fn libvirt_printed_virt_install_command_boots() {
    libvirt_printed(false, "virt-install");
}

#[test]
fn libvirt_printed_command_is_safe_with_an_odd_path() {
    libvirt_printed(true, "printf");
}

fn qemu_run(attr: &str) {
    if missing(&[]).is_some() {
        return;
    }
    let env = standin::env();
    let name = unique_name(attr);
    install(&env, attr, &name);

    let log = env.path("run.log");
    let reports = run_to_reports(&env, &name, &log);
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].version, "1");
    assert_program_read_only(&reports[0]);

    // The printed command boots the same guest.
    let log = env.path("printed.log");
    let out = env.run(&[
        "create",
        "-t",
        "qemu",
        &name,
        "--console-log",
        log.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ran = standin::sh_with_timeout(&stdout(&out), &env.path(""), 120);
    assert!(ran.status.success(), "{}\n{}", stdout(&out), stderr(&ran));
    let reports = standin::reports(&std::fs::read_to_string(&log).unwrap());
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_program_read_only(&reports[0]);
}

#[test]
fn qemu_9p_run_and_printed_command() {
    qemu_run("vm9p");
}

#[test]
fn qemu_virtiofs_run_and_printed_command() {
    qemu_run("vmfs");
}

#[test]
fn run_console_is_the_terminal() {
    let Some((env, name)) = installed_standin("vm9p", "tty", &[]) else {
        return;
    };
    let out = env
        .cmd()
        .args(["run", &name])
        .timeout(BOOT_TIMEOUT)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(standin::reports(&stdout(&out)).len(), 1, "{}", stdout(&out));
}

/// `miniguest run NAME` with the console in a file; every boot it holds.
fn run_to_reports(env: &TestEnv, name: &str, log: &std::path::Path) -> Vec<standin::Report> {
    let out = env
        .cmd()
        .args(["run", name, "--console-log", log.to_str().unwrap()])
        .timeout(BOOT_TIMEOUT)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    standin::reports(&std::fs::read_to_string(log).unwrap())
}

/// Defines the container, twice: the second time changes nothing.
fn lxc_define(env: &TestEnv, name: &str, lxcpath: &std::path::Path, log: &std::path::Path) {
    for verdict in ["defined", "unchanged"] {
        let out = env.run(&[
            "create",
            name,
            "--define",
            "--lxcpath",
            lxcpath.to_str().unwrap(),
            "--console-log",
            log.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out), format!("{verdict} LXC container {name}\n"));
    }
}

/// Runs a defined container in the foreground until its init exits, and
/// returns every boot its console log holds.
fn lxc_start(lxcpath: &std::path::Path, name: &str, log: &std::path::Path) -> Vec<standin::Report> {
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
fn defined_container(
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
fn nspawn_container(prefix: &str) -> Option<(TestEnv, String)> {
    if !lxc_ready() || missing(&[("systemd-nspawn", standin::which("systemd-nspawn"))]).is_some() {
        return None;
    }
    let env = standin::env();
    let name = unique_name(prefix);
    install(&env, "ct", &name);
    Some((env, name))
}

fn lxc_ready() -> bool {
    missing(&[
        ("lxc-start", standin::which("lxc-start")),
        (
            "a subuid range for root",
            std::fs::read_to_string("/etc/subuid").is_ok_and(|s| s.contains("root:")),
        ),
    ])
    .is_none()
}

#[test]
fn lxc_container_with_mapped_root_boots_and_cannot_write_the_store() {
    let Some((env, name, lxcpath, log)) = defined_container("ct") else {
        return;
    };
    let config = std::fs::read_to_string(lxcpath.join(&name).join("config")).unwrap();
    assert!(config.contains("lxc.idmap = u 0 "), "{config}");

    for (version, step) in [("1", "install"), ("2", "upgrade"), ("1", "rollback")] {
        match step {
            "upgrade" => {
                set_version(&env, "2");
                assert!(env.run(&["upgrade", &name]).status.success());
            }
            "rollback" => assert!(env.run(&["rollback", &name]).status.success()),
            _ => {}
        }
        let reports = lxc_start(&lxcpath, &name, &log);
        let last = reports.last().expect("no boot in the console log");
        assert_eq!(last.version, version, "after {step}");
        assert_program_root_owned_and_locked(last);
    }

    // Redefining with other settings rewrites the config in place.
    let again = env.run(&[
        "create",
        &name,
        "--define",
        "--lxcpath",
        lxcpath.to_str().unwrap(),
    ]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(stdout(&again), format!("updated LXC container {name}\n"));
    let updated = std::fs::read_to_string(lxcpath.join(&name).join("config")).unwrap();
    assert!(!updated.contains("lxc.console.logfile") && config.contains("lxc.console.logfile"));
}

#[test]
fn lxc_printed_script_and_nspawn_command_work_with_odd_paths() {
    let Some((env, name)) = nspawn_container("odd") else {
        return;
    };
    let work = env.path("work");
    std::fs::create_dir_all(&work).unwrap();

    let lxcpath = odd_guests_dir(&env).join("lxc");
    let log = env.path("ct.log");
    let out = env.run(&[
        "create",
        "-t",
        "lxc",
        &name,
        "--lxcpath",
        lxcpath.to_str().unwrap(),
        "--console-log",
        log.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ran = standin::sh_with_timeout(&stdout(&out), &work, 60);
    assert!(ran.status.success(), "{}\n{}", stdout(&out), stderr(&ran));
    let reports = lxc_start(&lxcpath, &name, &log);
    assert_eq!(reports.len(), 1);
    assert_program_root_owned_and_locked(&reports[0]);

    let out = env.run(&["create", "-t", "nspawn", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ran = standin::sh_with_timeout(&stdout(&out), &work, 60);
    assert!(ran.status.success(), "{}\n{}", stdout(&out), stderr(&ran));
    let reports = standin::reports(&stdout(&ran));
    assert_eq!(reports.len(), 1, "{}", stdout(&ran));
    assert_program_root_owned_and_locked(&reports[0]);
    assert!(!work.join("PWNED").exists());
}

#[test]
fn containers_refuse_an_unmapped_root_unless_told() {
    let Some((env, name)) = installed_standin("ct", "ct", &[]) else {
        return;
    };
    // A subuid file without root's range: the error says what to add.
    let out = env
        .cmd()
        .args(["create", &name, "--config"])
        .env("MINIGUEST_SUBID_DIR", env.path(""))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("root:1000000:65536"),
        "{}",
        stderr(&out)
    );
    let out = env
        .cmd()
        .args(["create", &name, "--config", "--unsafe-unmapped-root"])
        .env("MINIGUEST_SUBID_DIR", env.path(""))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains("lxc.idmap"));
    assert!(stderr(&out).contains("warning"));
}

#[test]
fn declared_volumes_reach_vm_and_container() {
    if !lxc_ready() {
        return;
    }
    let env = standin::env();
    let vm = unique_name("vmvol");
    install(&env, "vmvol", &vm);
    let log = env.path("vm.log");
    let reports = run_to_reports(&env, &vm, &log);
    assert!(reports[0].disks.contains("vda"), "{reports:?}");
    let image = env.path("state").join(&vm).join("state.img");
    assert_eq!(std::fs::metadata(&image).unwrap().len(), 8 * 1024 * 1024);

    // A stateless guest gets no disk.
    let plain = unique_name("vm9p");
    install(&env, "vm9p", &plain);
    let log = env.path("plain.log");
    let reports = run_to_reports(&env, &plain, &log);
    assert!(!reports[0].disks.contains("vda"), "{reports:?}");

    let ct = unique_name("ctvol");
    install(&env, "ctvol", &ct);
    let lxcpath = env.path("lxc");
    let log = env.path("ct.log");
    lxc_define(&env, &ct, &lxcpath, &log);
    let reports = lxc_start(&lxcpath, &ct, &log);
    assert_eq!(reports[0].state_writable, "yes", "{reports:?}");
    assert_eq!(reports[0].store_writable, "no");
}

/// Under systemd stage 1 (NixOS's default) each mount waits for what its
/// options require: the share's module (the guest module's
/// x-systemd.requires=modprobe@…), another mount, its parents; a unit it
/// is only ordered after is not pulled in.
#[test]
fn systemd_stage_1_mounts_each_file_system_after_what_it_requires() {
    let Some((env, name)) = installed_standin("vmorder", "vmorder", &[]) else {
        return;
    };
    let reports = run_to_reports(&env, &name, &env.path("run.log"));
    let report = &reports[0];
    assert_eq!(report.stage1, "systemd", "{report:?}");
    let units = &report.stage1_units;
    let at = |unit: &str| {
        units
            .iter()
            .position(|u| u == unit)
            .unwrap_or_else(|| panic!("{unit} did not run: {units:?}"))
    };
    assert!(
        at("modprobe@9pnet_virtio.service") < at("sysroot-nix-store.mount"),
        "{units:?}"
    );
    assert!(
        at("modprobe@9pnet_virtio.service") < at("sysroot-boot.mount"),
        "{units:?}"
    );
    assert!(
        at("sysroot.mount") < at("sysroot-nix-store.mount"),
        "{units:?}"
    );
    assert!(at("sysroot-b.mount") < at("sysroot-a.mount"), "{units:?}");
    assert!(
        !units.iter().any(|u| u == "modprobe@virtio_blk.service"),
        "an x-systemd.after= unit was pulled in: {units:?}"
    );
    assert_program_read_only(report);
}

/// Older releases' scripted stage 1 stays a tested path: it mounts /var
/// from its volume under /mnt-root, and the guest boots.
#[test]
fn scripted_stage_1_still_boots() {
    let Some((env, name)) = installed_standin("vmscripted", "vmscripted", &[]) else {
        return;
    };
    let reports = run_to_reports(&env, &name, &env.path("run.log"));
    assert_eq!(reports[0].stage1, "scripted", "{reports:?}");
    assert_eq!(reports[0].var, "ext4", "{reports:?}");
    assert_program_read_only(&reports[0]);
}

/// The README's persistent /var: stage 1 mounts it, so the image must be
/// formatted before the first boot. Plain QEMU (9p) and libvirt (virtiofs).
#[test]
fn a_volume_at_var_boots_the_first_time() {
    if missing(&[libvirt_needed()]).is_some() {
        return;
    }
    let env = standin::env();
    let name = unique_name("vmvar");
    install(&env, "vmvar", &name);
    let reports = run_to_reports(&env, &name, &env.path("run.log"));
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].var, "ext4", "{reports:?}");

    let name = unique_name("vmvarfs");
    install(&env, "vmvarfs", &name);
    let log = env.path(&format!("{name}.log"));
    let domain = Domain(name.clone());
    define_with_console_log(&env, &name, &log);
    domain.start();
    let reports = wait_for_reports(&log, 1, BOOT_TIMEOUT);
    assert_eq!(reports[0].var, "ext4", "{reports:?}");
    assert_program_read_only(&reports[0]);
}

#[test]
fn libvirt_gives_a_declared_volume_as_a_disk_and_the_printed_command_creates_it() {
    let Some((env, name)) = installed_standin("vmvol", "vmvol", &[libvirt_needed()]) else {
        return;
    };
    let log = env.path("vol.log");
    let _domain = Domain(name.clone());
    let out = env.run(&["create", &name, "--console-log", log.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ran = standin::sh_with_timeout(&stdout(&out), &env.path(""), 300);
    assert!(ran.status.success(), "{}\n{}", stdout(&out), stderr(&ran));
    let reports = wait_for_reports(&log, 1, BOOT_TIMEOUT);
    assert!(reports[0].disks.contains("vda"), "{reports:?}");
    let image = env.path("state").join(&name).join("state.img");
    assert_eq!(std::fs::metadata(image).unwrap().len(), 8 * 1024 * 1024);
}

/// The host module's define units, run as two activations would run them:
/// the first defines each declared guest, the second leaves it unchanged,
/// and the declared VM boots.
#[test]
fn the_host_modules_define_units_survive_a_second_activation() {
    if missing(&[libvirt_needed()]).is_some() || !lxc_ready() {
        return;
    }
    let env = standin::env();
    let host = format!(
        "path:{}#hostConfigurations.host.config",
        env.flake_dir().display()
    );
    let eval = |attr: &str| {
        let out = std::process::Command::new("nix")
            .envs(env.nix_env())
            .args(["eval", "--raw", &format!("{host}.{attr}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "{attr}: {}", stderr(&out));
        stdout(&out)
    };
    let build = |attr: &str| {
        let out = std::process::Command::new("nix")
            .envs(env.nix_env())
            .args(["build", "--no-link", "--json", &format!("{host}.{attr}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "{attr}: {}", stderr(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        json[0]["outputs"]["out"].as_str().unwrap().to_owned()
    };
    // What environment.etc puts in /etc/miniguests.
    std::fs::create_dir_all(env.guests_dir()).unwrap();
    let bin = assert_cmd::cargo::cargo_bin("miniguest");
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap()
    );
    let lxcpath = env.path("lxc");
    for name in ["declvm", "declct"] {
        let output = build(&format!("environment.etc.\"miniguests/{name}\".source"));
        std::os::unix::fs::symlink(&output, env.link(name)).unwrap();
        let script = eval(&format!(
            "systemd.services.\"miniguest-define-{name}\".script"
        ));
        let domain = Domain(name.to_owned());
        for verdict in ["defined", "unchanged"] {
            let ran = std::process::Command::new("sh")
                .args(["-c", &script])
                .envs(env.nix_env())
                .env("PATH", &path)
                .env("LIBVIRT_DEFAULT_URI", "qemu:///system")
                .env("MINIGUEST_LXCPATH", &lxcpath)
                .output()
                .unwrap();
            assert!(ran.status.success(), "{script}: {}", stderr(&ran));
            assert!(
                stdout(&ran).starts_with(verdict),
                "{name}: {}",
                stdout(&ran)
            );
        }
        if name == "declvm" {
            let log = env.path("declvm.log");
            let out = env.run(&[
                "create",
                name,
                "--define",
                "--console-log",
                log.to_str().unwrap(),
            ]);
            assert_eq!(
                stdout(&out),
                "updated libvirt domain declvm\n",
                "{}",
                stderr(&out)
            );
            domain.start();
            let reports = wait_for_reports(&log, 1, BOOT_TIMEOUT);
            assert_eq!(reports[0].name, "declvm");
            assert_program_read_only(&reports[0]);
        }
    }
}

fn status(env: &TestEnv, name: &str) -> serde_json::Value {
    let out = env.run(&["status", name, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    rows[0].clone()
}

/// Whether Nix would delete the path: `nix-store --delete` refuses a path
/// that is still reachable from a root. No garbage collection of the whole
/// store, which other tests build into at the same time.
fn collectable(env: &TestEnv, path: &str) -> bool {
    std::process::Command::new("nix-store")
        .envs(env.nix_env())
        .args(["--delete", path])
        .output()
        .unwrap()
        .status
        .success()
}

/// Day two on one backend: define twice, start, status, upgrade, the
/// booted closure kept while it runs, restart into the new version, stop,
/// the old closure collectable, remove undefining.
fn day_two(
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
    let deleted = std::process::Command::new("nix-env")
        .envs(env.nix_env())
        .arg("--profile")
        .arg(env.profile(&name))
        .args(["--delete-generations", "old"])
        .output()
        .unwrap();
    assert!(deleted.status.success(), "{}", stderr(&deleted));
    assert!(
        !collectable(&env, &first),
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
        collectable(&env, &first),
        "the old closure outlived its guest"
    );

    let out = env.run(&["remove", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("undefined"), "{}", stdout(&out));
}

#[test]
fn day_two_libvirt() {
    // The stand-in ignores ACPI: a clean stop times out, a forced one kills.
    day_two(
        "vmstay",
        &[],
        &[libvirt_needed()],
        &["--force"],
        &["--memory", "384"],
    );
}

#[test]
fn day_two_libvirt_virtiofs() {
    day_two(
        "vmstayfs",
        &[],
        &[libvirt_needed()],
        &["--force"],
        &["--memory", "384"],
    );
}

#[test]
fn day_two_lxc() {
    if !lxc_ready() {
        return;
    }
    let lxcpath = tempfile::tempdir().unwrap();
    // A changed definition for a container: it now starts with the host.
    day_two(
        "ctstay",
        &["--lxcpath", lxcpath.path().to_str().unwrap()],
        &[],
        &[],
        &["--autostart"],
    );
}

/// A container started with LXC's own tools, not through Miniguest: the
/// hooks `create --define` wrote root what it booted, and unroot it when it
/// stops.
#[test]
fn lxc_start_by_hand_roots_the_booted_output() {
    let Some((env, name, lxcpath, log)) = defined_container("ctstay") else {
        return;
    };
    let root = std::path::Path::new("/nix/var/nix/gcroots/miniguest").join(&name);
    let lxc = |tool: &str, extra: &[&str]| {
        let out = std::process::Command::new(tool)
            .arg("-P")
            .arg(&lxcpath)
            .args(["-n", &name])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{tool}: {}", stderr(&out));
    };
    lxc("lxc-start", &[]);
    wait_for_reports(&log, 1, BOOT_TIMEOUT);
    assert_eq!(
        std::fs::read_link(&root).unwrap(),
        env.current_output(&name),
        "no root for what the container booted"
    );
    let s = status(&env, &name);
    assert_eq!(s["state"], "running", "{s}");
    assert_eq!(s["booted"], s["current"], "{s}");
    lxc("lxc-stop", &["-k"]);
    assert!(
        root.symlink_metadata().is_err(),
        "the root outlived the container"
    );
}

/// A domain started with `virsh start`, not through Miniguest: libvirt's
/// QEMU hook roots what it boots, and unroots it when it stops.
#[test]
fn virsh_start_by_hand_roots_the_booted_output() {
    let Some((env, name)) = installed_standin("vmstay", "vmstay", &[libvirt_needed()]) else {
        return;
    };
    let log = env.path("vm.log");
    let domain = Domain(name.clone());
    define_with_console_log(&env, &name, &log);
    let root = std::path::Path::new("/nix/var/nix/gcroots/miniguest").join(&name);
    domain.start();
    assert_eq!(
        std::fs::read_link(&root).unwrap(),
        env.current_output(&name),
        "no root for what the domain booted"
    );
    wait_for_reports(&log, 1, BOOT_TIMEOUT);
    let s = status(&env, &name);
    assert_eq!(s["booted"], s["current"], "{s}");
    let destroyed = domain.virsh(&["destroy", &name]);
    assert!(destroyed.status.success(), "{}", stderr(&destroyed));
    // The release hook runs as libvirt tears the domain down.
    for _ in 0..50 {
        if root.symlink_metadata().is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the root outlived the domain");
}

/// `create -t nspawn --define` writes what `machinectl start` uses: the
/// `.nspawn` settings, the image link and the drop-in. systemd-nspawn
/// reads those settings (here from /run/systemd/nspawn, machined being
/// absent) and boots the guest with nothing on its command line but the
/// machine and its directory.
#[test]
fn nspawn_define_writes_settings_systemd_nspawn_boots() {
    let Some((env, name)) = nspawn_container("ct") else {
        return;
    };
    let settings_dir = std::path::Path::new("/run/systemd/nspawn");
    struct Remove(std::path::PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _settings = Remove(settings_dir.join(format!("{name}.nspawn")));
    let define = || {
        env.cmd()
            .args(["create", "-t", "nspawn", "--define", &name])
            .env("MINIGUEST_NSPAWN_DIR", settings_dir)
            .env("MINIGUEST_MACHINES_DIR", env.path("machines"))
            .env("MINIGUEST_UNIT_DIR", env.path("units"))
            .output()
            .unwrap()
    };
    for verdict in ["defined", "unchanged"] {
        let out = define();
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out), format!("{verdict} nspawn machine {name}\n"));
    }
    let drop_in = std::fs::read_to_string(
        env.path("units")
            .join(format!("systemd-nspawn@{name}.service.d/miniguest.conf")),
    )
    .unwrap();
    assert!(
        drop_in.contains("ExecStartPre=") && drop_in.contains("ExecStopPost="),
        "{drop_in}"
    );
    let image = env.path("machines").join(&name).canonicalize().unwrap();
    let ran = std::process::Command::new("timeout")
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
        .unwrap();
    assert!(ran.status.success(), "{}", stderr(&ran));
    let reports = standin::reports(&stdout(&ran));
    assert_eq!(reports.len(), 1, "{}", stdout(&ran));
    assert_program_root_owned_and_locked(&reports[0]);
    let s = status(&env, &name);
    assert_eq!(s["backend"], "nspawn");
    // Just defined: its definition is what Miniguest would write now.
    assert_eq!(s["reasons"], serde_json::json!([]), "{s}");
}

/// `upgrade --restart` restarts a running guest into its new generation,
/// and leaves one that already runs its current generation alone.
#[test]
fn upgrade_restart_restarts_only_what_changed() {
    let Some((env, name, _, log)) = defined_container("ctstay") else {
        return;
    };
    let out = env.run(&["start", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for_reports(&log, 1, BOOT_TIMEOUT);
    let first = status(&env, &name)["booted"].clone();

    let out = env.run(&["upgrade", "--restart", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("up to date"), "{}", stdout(&out));
    assert_eq!(
        status(&env, &name)["booted"],
        first,
        "restarted for nothing"
    );

    set_version(&env, "2");
    let _ = std::fs::remove_file(&log);
    let out = env.run(&["upgrade", "--restart", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = status(&env, &name);
    assert_eq!(s["state"], "running", "{s}");
    assert_eq!(s["booted"], s["current"], "{s}");
    assert_ne!(s["booted"], first, "{s}");
    let reports = wait_for_reports(&log, 1, BOOT_TIMEOUT);
    assert_eq!(reports.last().unwrap().version, "2", "{reports:?}");
    let out = env.run(&["stop", &name, "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// User-mode networking works with no host setup, and a forwarded port
/// reaches the guest: the stand-in answers on its port 22 through host
/// port 47222 (loopback), under `miniguest run`; the printed command
/// carries the same forward.
#[test]
fn user_networking_forwards_a_port_to_the_guest() {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    let Some((env, name)) = installed_standin("vmnet", "vmnet", &[]) else {
        return;
    };
    let log = env.path("net.log");
    let mut run = env.std_cmd();
    run.args(["run", &name, "--console-log", log.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0);
    let child = run.spawn().unwrap();
    // `miniguest run` and its QEMU, as one process group.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            if let Some(group) = rustix::process::Pid::from_raw(self.0.id() as i32) {
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            }
            let _ = self.0.wait();
        }
    }
    let _kill = Kill(child);
    wait_for_reports(&log, 1, BOOT_TIMEOUT);
    let mut answer = String::new();
    for _ in 0..100 {
        if let Ok(mut s) = std::net::TcpStream::connect("127.0.0.1:47222") {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            answer.clear();
            let _ = s.read_to_string(&mut answer);
            if answer.contains("STANDIN-HELLO") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(answer.contains("STANDIN-HELLO name=vmnet"), "{answer:?}");

    let out = env.run(&["create", "-t", "qemu", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("hostfwd=tcp:127.0.0.1:47222-:22"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("network: user-mode, forwarding 127.0.0.1:47222 -> 22/tcp"),
        "{}",
        stderr(&out)
    );
}
