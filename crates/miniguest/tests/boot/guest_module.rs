//! What the guest module declares, booted: systemd and scripted stage 1,
//! and volumes.

use crate::common::standin::{self, missing, unique_name, wait_for_reports, Domain};
use crate::helpers::*;

/// Under systemd stage 1 (NixOS's default) each mount waits for what its
/// options require: the share's module (the guest module's
/// x-systemd.requires=modprobe@…), another mount, its parents; a unit it
/// is only ordered after is not pulled in; the closure is found once the
/// boot share is there.
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
    // NixOS's unit that finds the system from init= waits for the boot
    // share, where init= points, not only for the store.
    assert!(
        at("sysroot-boot.mount") < at("initrd-find-nixos-closure.service"),
        "{units:?}"
    );
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
