//! systemd credentials, from host files to what the guest reads where
//! systemd would (a VM's fw_cfg, a container's $CREDENTIALS_DIRECTORY): the
//! stand-in prints each one's SHA-256. The values themselves appear in no
//! store path, definition, printed command or status.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::standin::{self, missing, unique_name};
use crate::common::{sha256_hex, stderr, stdout, TestEnv};
use crate::helpers::*;

/// Two secret files, unique to this run, with what the guest must print.
struct Secrets {
    args: Vec<String>,
    values: Vec<String>,
    hashes: BTreeMap<String, String>,
}

fn secrets(env: &TestEnv) -> Secrets {
    use std::os::unix::fs::PermissionsExt;
    let dir = env.path("secrets");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut s = Secrets {
        args: vec![],
        values: vec![],
        hashes: BTreeMap::new(),
    };
    for name in ["api-token", "ssh-host-key"] {
        let value = format!("{name}-secret-{}-{}", std::process::id(), unique_name("v"));
        let path = dir.join(name);
        std::fs::write(&path, &value).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        s.args.push("--credential".into());
        s.args.push(format!("{name}={}", path.display()));
        s.hashes.insert(name.into(), sha256_hex(value.as_bytes()));
        s.values.push(value);
    }
    s
}

impl Secrets {
    fn args(&self) -> Vec<&str> {
        self.args.iter().map(String::as_str).collect()
    }

    /// `create -t BACKEND NAME` with these credentials, which must
    /// succeed and show no value, in the command or in what it says.
    fn printed(&self, env: &TestEnv, backend: &str, name: &str) -> std::process::Output {
        let mut args = vec!["create", "-t", backend, name];
        args.extend(self.args());
        let out = env.run(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        self.assert_absent("the printed command", &stdout(&out));
        self.assert_absent("create's messages", &stderr(&out));
        out
    }

    /// None of the values is in `text`.
    fn assert_absent(&self, what: &str, text: &str) {
        for v in &self.values {
            assert!(
                !text.contains(v.as_str()),
                "a credential's value is in {what}"
            );
        }
    }

    /// Nor in any file of the guest's output or of its closure's
    /// registration (the store paths the guest was built from).
    fn assert_absent_from_output(&self, env: &TestEnv, name: &str) {
        let output = env.guests_dir().join(name).canonicalize().unwrap();
        for entry in walk(&output) {
            if let Ok(bytes) = std::fs::read(&entry) {
                self.assert_absent(
                    &entry.display().to_string(),
                    &String::from_utf8_lossy(&bytes),
                );
            }
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            out.extend(walk(&p));
        } else if meta.is_file() {
            out.push(p);
        }
    }
    out
}

fn staging(name: &str) -> PathBuf {
    Path::new("/run/miniguest/credentials").join(name)
}

/// Plain QEMU reads the sources itself (fw_cfg); the printed command
/// holds their paths only.
#[test]
fn credentials_reach_a_vm_under_run() {
    let Some((env, name)) = installed_standin("vmcred", "vmcred", &[]) else {
        return;
    };
    let s = secrets(&env);
    let log = env.path("run.log");
    let mut args = vec!["run", &name, "--console-log", log.to_str().unwrap()];
    args.extend(s.args());
    let out = env
        .cmd()
        .args(&args)
        .timeout(BOOT_TIMEOUT)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let reports = standin::reports(&std::fs::read_to_string(&log).unwrap());
    assert_eq!(reports[0].credentials, s.hashes, "{reports:?}");

    let out = s.printed(&env, "qemu", &name);
    assert!(
        stdout(&out).contains("-fw_cfg name=opt/io.systemd.credentials/api-token,file="),
        "{}",
        stdout(&out)
    );
    // What the guest gets of the host names each source, as a path only.
    assert!(
        stderr(&out).contains("(credential api-token, read at each start)"),
        "{}",
        stderr(&out)
    );
    s.assert_absent_from_output(&env, &name);

    // What the guest does not declare, and what it declares but is not
    // given, are refused before anything starts.
    let extra = env.path("secrets/api-token");
    let out = env.run(&[
        "create",
        "-t",
        "qemu",
        &name,
        "--credential",
        &format!("other={}", extra.display()),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--credential other: guest"),
        "{}",
        stderr(&out)
    );
    let out = env.run(&["create", "-t", "qemu", &name]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("credential api-token: guest") && stderr(&out).contains("expects it"),
        "{}",
        stderr(&out)
    );
}

/// libvirt: `<sysinfo type='fwcfg'>` names copies staged for QEMU's user
/// as the domain starts (by the hook under `virsh start`, by `start`),
/// removed when it stops; the domain XML and `status --json` hold no value.
fn libvirt_credentials(attr: &str, by_hand: bool) {
    let Some((env, name)) = installed_standin(attr, attr, &[libvirt_needed()]) else {
        return;
    };
    let s = secrets(&env);
    let (domain, reports) = boot_libvirt(&env, &name, &s.args(), by_hand);
    assert_eq!(reports[0].credentials, s.hashes, "{reports:?}");
    let xml = stdout(&domain.virsh(&["dumpxml", &name]));
    assert!(xml.contains("<sysinfo type='fwcfg'>"), "{xml}");
    s.assert_absent("the domain XML", &xml);
    let status = env.run(&["status", &name, "--json"]);
    s.assert_absent("status --json", &stdout(&status));
    s.assert_absent_from_output(&env, &name);
    domain.wait_shut_off(BOOT_TIMEOUT);
    // libvirt's release hook runs just after the domain is off.
    for _ in 0..50 {
        if !staging(&name).exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        !staging(&name).exists(),
        "staged credentials left after stop"
    );
}

#[test]
fn credentials_reach_a_libvirt_9p_guest_started_by_hand() {
    libvirt_credentials("vmcred", true);
}

#[test]
fn credentials_reach_a_libvirt_virtiofs_guest() {
    libvirt_credentials("vmcredfs", false);
}

/// LXC: the staged directory, the container root's own and bound
/// read-only, is the container's $CREDENTIALS_DIRECTORY, and is gone once
/// it stops.
#[test]
fn credentials_reach_an_lxc_container() {
    if !lxc_ready() || missing(&[]).is_some() {
        return;
    }
    let env = standin::env();
    let name = unique_name("ctcred");
    install(&env, "ctcred", &name);
    let s = secrets(&env);
    let lxcpath = env.path("lxc");
    let log = env.path("ct.log");
    lxc_define_with(&env, &name, &lxcpath, &log, &s.args());
    let config = std::fs::read_to_string(lxcpath.join(&name).join("config")).unwrap();
    assert!(
        config.contains("lxc.environment = CREDENTIALS_DIRECTORY=/run/host/credentials"),
        "{config}"
    );
    s.assert_absent("the LXC config", &config);
    let reports = lxc_start(&lxcpath, &name, &log);
    assert_eq!(reports[0].credentials, s.hashes, "{reports:?}");
    assert_program_read_only(&reports[0]);
    assert!(
        !staging(&name).exists(),
        "staged credentials left after stop"
    );
}

/// nspawn reads the sources itself (`--load-credential`, `LoadCredential=`
/// in the settings) and hands them to the container's PID 1.
#[test]
fn credentials_reach_an_nspawn_machine() {
    if !lxc_ready() || missing(&[("systemd-nspawn", standin::which("systemd-nspawn"))]).is_some() {
        return;
    }
    let env = standin::env();
    let name = unique_name("nscred");
    install(&env, "ctcred", &name);
    let s = secrets(&env);
    let work = env.path("work");
    std::fs::create_dir_all(&work).unwrap();
    let out = s.printed(&env, "nspawn", &name);
    assert!(
        stdout(&out).contains("--load-credential=api-token:"),
        "{}",
        stdout(&out)
    );
    let ran = standin::sh_with_timeout(&stdout(&out), &work, 60);
    assert!(ran.status.success(), "{}\n{}", stdout(&out), stderr(&ran));
    let reports = standin::reports(&stdout(&ran));
    assert_eq!(reports[0].credentials, s.hashes, "{}", stdout(&ran));
}
