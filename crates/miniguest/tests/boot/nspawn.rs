//! systemd-nspawn: the printed command and `create -t nspawn --define`.

use crate::common::standin::{self};
use crate::common::{stderr, stdout};
use crate::helpers::*;

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
    let _settings = NspawnSettings::of(&name);
    let define = || nspawn_define(&env, &name, &[]);
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
    let ran = nspawn_run_defined(&env, &name);
    assert!(ran.status.success(), "{}", stderr(&ran));
    let reports = standin::reports(&stdout(&ran));
    assert_eq!(reports.len(), 1, "{}", stdout(&ran));
    assert_program_root_owned_and_locked(&reports[0]);
    let s = status(&env, &name);
    assert_eq!(s["backend"], "nspawn");
    // Just defined: its definition is what Miniguest would write now.
    assert_eq!(s["reasons"], serde_json::json!([]), "{s}");
}
