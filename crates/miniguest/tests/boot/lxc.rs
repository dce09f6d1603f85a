//! LXC: containers with a mapped root, day two, and containers started with
//! LXC's own tools.

use crate::common::standin::{set_version, wait_for_reports};
use crate::common::{stderr, stdout};
use crate::helpers::*;

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
fn day_two_lxc() {
    // A changed definition for a container: it now starts with the host.
    in_own_lxcpath(|lxcpath| day_two("ctstay", lxcpath, &[], &[], &["--autostart"]));
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

/// A container whose init ignores LXC's halt signal: `stop` gives up after
/// the wait it was given and says how long that was, and `--force` still
/// ends it.
#[test]
fn lxc_stop_names_the_wait_it_gave() {
    let Some((env, name, _, log)) = defined_container("ctdeaf") else {
        return;
    };
    let out = env.run(&["start", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for_reports(&log, 1, BOOT_TIMEOUT);
    let asked = std::time::Instant::now();
    let out = env.run(&["stop", &name, "--timeout", "3"]);
    let waited = asked.elapsed();
    assert!(
        !out.status.success(),
        "a deaf init stopped: {}",
        stdout(&out)
    );
    assert!(
        waited >= std::time::Duration::from_secs(3),
        "gave up after {waited:?}"
    );
    let message = stderr(&out);
    let said: u64 = message
        .split("did not stop within ")
        .nth(1)
        .and_then(|rest| rest.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no wait named: {message}"));
    assert!(
        (3..=waited.as_secs() + 1).contains(&said),
        "said {said}s after waiting {waited:?}: {message}"
    );
    assert_eq!(status(&env, &name)["state"], "running");
    let out = env.run(&["stop", &name, "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(status(&env, &name)["state"], "stopped");
}
