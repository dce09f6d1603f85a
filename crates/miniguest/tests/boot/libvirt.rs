//! libvirt: define, boot, upgrade, roll back, the printed commands, day two,
//! and domains started by hand.

use std::time::Duration;

use crate::common::standin::{self, missing, set_version, unique_name, wait_for_reports, Domain};
use crate::common::{stderr, stdout};
use crate::helpers::*;

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

/// A writable virtiofs share under libvirt: libvirt is handed the
/// virtiofsd Miniguest found (QEMU 8 and later ship none for libvirt to
/// find), and the guest can write to the share.
#[test]
fn libvirt_boots_a_writable_virtiofs_share() {
    let Some((env, name)) = installed_standin("vmsharefs", "vmsharefs", &[libvirt_needed()]) else {
        return;
    };
    // The share the stand-in declares (see its flake).
    std::fs::create_dir_all("/var/tmp/miniguest-test-share").unwrap();
    let (_domain, reports) = boot_libvirt(&env, &name, &[], false);
    assert_program_read_only(&reports[0]);
    assert_eq!(reports[0].state_writable, "yes", "{reports:?}");
}
