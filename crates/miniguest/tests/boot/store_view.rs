//! The closure-only store view: the stand-in lists its /nix/store, which
//! must hold exactly the paths its output registers, on every backend that
//! builds the view; and a view on the host lasts only until its consumer
//! has its copy.

use crate::common::standin::{self, unique_name, Domain};
use crate::common::{sha256_hex, stderr, TestEnv};
use crate::helpers::*;

/// The count and hash the stand-in prints for a view of exactly its
/// closure; and a store path made for this test, which it must not see.
fn expected(env: &TestEnv, name: &str) -> (String, String) {
    let output = env.guests_dir().join(name).canonicalize().unwrap();
    let store = miniguest::nix::store_path::store_dir();
    let names = miniguest::contract::registration::closure(&output, &store).unwrap();
    let outsider = env.path("outsider");
    std::fs::write(&outsider, format!("not in any closure {name}")).unwrap();
    let added = std::process::Command::new("nix-store")
        .envs(env.nix_env())
        .arg("--add")
        .arg(&outsider)
        .output()
        .unwrap();
    assert!(added.status.success(), "{}", stderr(&added));
    let added = String::from_utf8(added.stdout).unwrap();
    assert!(std::path::Path::new(added.trim()).exists());
    let added_name = added.trim().rsplit('/').next().unwrap().to_owned();
    assert!(!names.contains(&added_name));
    let listing: String = names.iter().map(|n| format!("{n}\n")).collect();
    (names.len().to_string(), sha256_hex(listing.as_bytes()))
}

fn assert_sees_its_closure(report: &standin::Report, want: &(String, String)) {
    assert_eq!(
        (&report.store_count, &report.store_hash),
        (&want.0, &want.1),
        "the guest's store is not exactly its closure: {report:?}"
    );
}

/// The host's mount table holds no view of guest `name`.
fn assert_no_host_view(name: &str) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = format!("/run/miniguest/views/{name}/");
    assert!(!info.contains(&dir), "a view of {name} is left on the host");
}

fn run_closure(attr: &str) {
    let Some((env, name)) = installed_standin(attr, attr, &[]) else {
        return;
    };
    let want = expected(&env, &name);
    let log = env.path("run.log");
    let out = env
        .cmd()
        .args([
            "run",
            &name,
            "--store-view",
            "closure",
            "--console-log",
            log.to_str().unwrap(),
        ])
        .timeout(BOOT_TIMEOUT)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let reports = standin::reports(&std::fs::read_to_string(&log).unwrap());
    assert_sees_its_closure(&reports[0], &want);
    assert_program_read_only(&reports[0]);
    assert_no_host_view(&name);
}

#[test]
fn closure_view_under_run_9p() {
    run_closure("vm9p");
}

#[test]
fn closure_view_under_run_virtiofs() {
    run_closure("vmfs");
}

/// libvirt: built on the host as the domain starts, copied by QEMU's (or
/// virtiofsd's) namespace, and gone from the host once the domain runs.
fn libvirt_closure(attr: &str, by_hand: bool) {
    let Some((env, name)) = installed_standin(attr, attr, &[libvirt_needed()]) else {
        return;
    };
    let want = expected(&env, &name);
    let (domain, reports) = boot_libvirt(&env, &name, &["--store-view", "closure"], by_hand);
    assert_sees_its_closure(&reports[0], &want);
    assert_program_read_only(&reports[0]);
    assert_no_host_view(&name);
    domain.wait_shut_off(BOOT_TIMEOUT);
}

#[test]
fn closure_view_on_libvirt_9p_started_by_hand() {
    libvirt_closure("vm9p", true);
}

#[test]
fn closure_view_on_libvirt_virtiofs() {
    libvirt_closure("vmfs", false);
}

/// LXC: built by the pre-start hook from the container's idmapped view of
/// the store, so the closure is root's inside, read-only and locked.
#[test]
fn closure_view_in_an_lxc_container() {
    let Some((env, name, lxcpath, log)) = (|| {
        if !lxc_ready() {
            return None;
        }
        let env = standin::env();
        let name = unique_name("ctview");
        install(&env, "ct", &name);
        let lxcpath = env.path("lxc");
        let log = env.path("ct.log");
        Some((env, name, lxcpath, log))
    })() else {
        return;
    };
    let want = expected(&env, &name);
    lxc_define_with(&env, &name, &lxcpath, &log, &["--store-view", "closure"]);
    let reports = lxc_start(&lxcpath, &name, &log);
    assert_sees_its_closure(&reports[0], &want);
    assert_program_root_owned_and_locked(&reports[0]);
    assert_no_host_view(&name);
}

/// Printed commands cannot build a view, and say so.
#[test]
fn a_printed_command_refuses_the_closure_view() {
    let Some((env, name)) = installed_standin("vm9p", "printed", &[]) else {
        return;
    };
    let out = env.run(&["create", "-t", "qemu", &name, "--store-view", "closure"]);
    assert!(
        !stderr(&out).contains("gets these host paths"),
        "a refusal followed part of an output"
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--store-view closure: a printed command cannot build the view"),
        "{}",
        stderr(&out)
    );
}

/// The names in the running guest's /nix/store, sorted.
fn listed(env: &TestEnv, name: &str) -> Vec<String> {
    let out = exec_in(env, name, &["ls", "-A", "/nix/store"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut names: Vec<String> = crate::common::stdout(&out)
        .lines()
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

fn closure_of(env: &TestEnv, name: &str) -> Vec<String> {
    let output = env.current_output(name);
    miniguest::contract::registration::closure(&output, &miniguest::nix::store_path::store_dir())
        .unwrap()
}

/// `upgrade --switch` adds the new closure's paths to the running guest's
/// view before it switches (the new system runs from them); a restart
/// then shows only the new closure.
fn switch_extends_the_view(attr: &str, extra: &[&str], needs: &[(&str, bool)]) {
    let Some((env, name)) = installed_standin(attr, attr, needs) else {
        return;
    };
    let _domain = attr.starts_with("vm").then(|| Domain(name.clone()));
    let mut define = vec!["create", &name, "--define", "--store-view", "closure"];
    define.extend_from_slice(extra);
    let out = env.run(&define);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.run(&["start", &name, "--wait=90"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let first = closure_of(&env, &name);
    assert_eq!(listed(&env, &name), first);

    standin::set_version(&env, "2");
    let out = env.run(&["upgrade", "--switch", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        crate::common::stdout(&out).contains("without a reboot"),
        "{}",
        crate::common::stdout(&out)
    );
    let second = closure_of(&env, &name);
    assert_ne!(first, second);
    let now = listed(&env, &name);
    for path in first.iter().chain(&second) {
        assert!(
            now.contains(path),
            "{path} is missing after the switch: {now:?}"
        );
    }
    let out = exec_in(&env, &name, &["cat", "/run/current-system/nixos-version"]);
    assert_eq!(crate::common::stdout(&out).trim(), "2", "{}", stderr(&out));
    // What the switch added is as read-only as the rest: a container's
    // root cannot remount it read-write.
    let added = second.iter().find(|p| !first.contains(p)).unwrap();
    let path = format!("/nix/store/{added}");
    let out = exec_in(&env, &name, &["mount", "-o", "remount,rw,bind", &path]);
    assert!(!out.status.success(), "{path} was remounted read-write");
    let out = exec_in(&env, &name, &["touch", &format!("{path}/.probe")]);
    assert!(!out.status.success(), "{path} is writable");

    let out = env.run(&["restart", &name, "--wait=90"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(listed(&env, &name), second);
    let _ = env.run(&["stop", "--force", &name]);
}

#[test]
fn closure_view_follows_a_switch_on_lxc() {
    in_own_lxcpath(|lxcpath| switch_extends_the_view("ctstay", lxcpath, &[]));
}

#[test]
fn closure_view_follows_a_switch_on_libvirt_9p() {
    switch_extends_the_view("vmstay", &[], &[libvirt_needed()]);
}

#[test]
fn closure_view_follows_a_switch_on_libvirt_virtiofs() {
    switch_extends_the_view("vmstayfs", &[], &[libvirt_needed()]);
}

/// nspawn: the drop-in's hook builds the view (idmapped, from an idmapped
/// view of the store) and the settings bind it; nspawn reads them as
/// `machinectl start` would have it (machined being absent here, the test
/// runs the hook as the drop-in would, then systemd-nspawn).
#[test]
fn closure_view_in_an_nspawn_machine() {
    let Some((env, name)) = nspawn_container("nsview") else {
        return;
    };
    let want = expected(&env, &name);
    let _settings = NspawnSettings::of(&name);
    let out = nspawn_define(&env, &name, &["--store-view", "closure"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.run(&["hook", "started", &name, "nspawn"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ran = nspawn_run_defined(&env, &name);
    let out = env.run(&["hook", "stopped", &name, "nspawn"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(ran.status.success(), "{}", stderr(&ran));
    let reports = standin::reports(&crate::common::stdout(&ran));
    assert_sees_its_closure(&reports[0], &want);
    assert_program_root_owned_and_locked(&reports[0]);
    assert_no_host_view(&name);
}
