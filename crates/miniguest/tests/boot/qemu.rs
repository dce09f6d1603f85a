//! Plain QEMU: `miniguest run` and the printed command, its console, and
//! user-mode networking with a forwarded port.

use std::time::Duration;

use crate::common::standin::{self, missing, unique_name, wait_for_reports};
use crate::common::{stderr, stdout};
use crate::helpers::*;

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

/// A guest under `run` lives no longer than `run`: killed outright (no
/// chance to clean up), it takes QEMU and virtiofsd with it, so nothing
/// lingers holding the shares or the terminal's pipes.
#[test]
fn killing_run_stops_its_guest() {
    let Some((env, name)) = installed_standin("vmstayfs", "orphan", &[]) else {
        return;
    };
    let log = env.path("orphan.log");
    let mut run = env
        .std_cmd()
        .args(["run", &name, "--console-log", log.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_reports(&log, 1, BOOT_TIMEOUT);
    let children = child_pids(run.id());
    assert!(children.len() >= 2, "QEMU and virtiofsd: {children:?}");
    run.kill().unwrap();
    run.wait().unwrap();
    let gone = |pid: &u32| !std::path::Path::new(&format!("/proc/{pid}")).exists();
    for _ in 0..100 {
        if children.iter().all(gone) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("still running after run was killed: {children:?}");
}

fn child_pids(parent: u32) -> Vec<u32> {
    let list = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children")).unwrap();
    list.split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}
