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
