//! The host module's define units, run as activations run them.

use crate::common::standin::{self, missing, wait_for_reports, Domain};
use crate::common::{stderr, stdout};
use crate::helpers::*;

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
