//! The systemd stand-in: Debian's real systemd 257 as PID 1, with NixOS's
//! unit set, and in VMs as stage 1 too, configured by the guest module
//! through the model. What the tests read is what systemd itself says: its state, the
//! credentials it imported, its own shutdown.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use crate::common::standin::{self, missing, unique_name};
use crate::common::{sha256_hex, stderr, stdout, TestEnv};
use crate::helpers::*;

/// A credential file for each name the stand-in declares, and the
/// `--credential` options naming them; the hash of each value.
fn credentials(env: &TestEnv) -> (Vec<String>, Vec<(String, String)>) {
    let dir = env.path("secrets");
    std::fs::create_dir_all(&dir).unwrap();
    let mut args = vec![];
    let mut hashes = vec![];
    for name in ["api-token", "ssh-host-key"] {
        let value = format!("{name}-{}", unique_name("value"));
        let path = dir.join(name);
        std::fs::write(&path, &value).unwrap();
        args.push("--credential".to_owned());
        args.push(format!("{name}={}", path.display()));
        hashes.push((name.to_owned(), sha256_hex(value.as_bytes())));
    }
    (args, hashes)
}

/// A systemd stand-in defined on a backend.
struct Guest {
    env: TestEnv,
    name: String,
    log: std::path::PathBuf,
    /// Each credential it was given, with the hash of its value.
    hashes: Vec<(String, String)>,
    /// A VM (its own kernel and store), not a container.
    vm: bool,
    /// Its libvirt domain, undefined when dropped.
    _domain: Option<standin::Domain>,
}

impl Guest {
    fn console(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The systemd stand-in `attr` installed as a fresh guest, with a
/// credential file for each name it may declare: the `--credential`
/// options, their hashes, and where its console goes.
struct Installed {
    env: TestEnv,
    name: String,
    log: std::path::PathBuf,
    args: Vec<String>,
    hashes: Vec<(String, String)>,
}

impl Installed {
    /// Its `--credential` options, for a command that defines or runs it.
    fn credential_args(&self) -> Vec<&str> {
        self.args.iter().map(String::as_str).collect()
    }

    /// The guest it is once defined or running: a VM or a container, with
    /// its libvirt domain if it has one.
    fn into_guest(self, vm: bool, domain: Option<standin::Domain>) -> Guest {
        Guest {
            env: self.env,
            name: self.name,
            log: self.log,
            hashes: self.hashes,
            vm,
            _domain: domain,
        }
    }
}

fn installed_systemd_guest(attr: &str) -> Installed {
    let env = standin::systemd_env();
    let name = unique_name(attr);
    install(&env, attr, &name);
    let (args, hashes) = credentials(&env);
    let log = env.path("console.log");
    Installed {
        env,
        name,
        log,
        args,
        hashes,
    }
}

/// The stand-in `attr` installed with the systemd stand-in's programs and
/// defined as an LXC container in its own LXC path, with credentials if it
/// declares them.
fn systemd_container(attr: &str) -> Option<Guest> {
    if !lxc_ready() {
        return None;
    }
    let installed = installed_systemd_guest(attr);
    let lxcpath = installed.env.path("lxc");
    let credentials = if attr == "ctsd" {
        installed.credential_args()
    } else {
        vec![]
    };
    lxc_define_with(
        &installed.env,
        &installed.name,
        &lxcpath,
        &installed.log,
        &credentials,
    );
    Some(installed.into_guest(false, None))
}

/// The VM stand-in `attr` with the systemd stand-in's programs, defined
/// as a libvirt domain with its credentials.
fn systemd_libvirt(attr: &str) -> Option<Guest> {
    if missing(&[libvirt_needed()]).is_some() {
        return None;
    }
    let installed = installed_systemd_guest(attr);
    define_with(
        &installed.env,
        &installed.name,
        &installed.log,
        &installed.credential_args(),
    );
    let domain = standin::Domain(installed.name.clone());
    Some(installed.into_guest(true, Some(domain)))
}

/// `start --wait` returns when systemd says `running`; systemd lists the
/// host's credentials as system credentials, with their values; the
/// guest's Nix has its closure registered.
fn starts_to_running_with_credentials(guest: &Guest) {
    let Guest { env, name, .. } = guest;
    let out = env.run(&["start", name, "--wait=240"]);
    assert!(
        out.status.success(),
        "{}\n{}\n{}",
        stdout(&out),
        stderr(&out),
        guest.console()
    );
    assert!(stdout(&out).contains("is ready"), "{}", stdout(&out));
    assert_running(guest);
    let listed = exec_in(
        env,
        name,
        &["systemd-creds", "--system", "list", "--no-legend"],
    );
    assert!(listed.status.success(), "{}", stderr(&listed));
    for (cred, hash) in &guest.hashes {
        assert!(
            stdout(&listed).contains(cred.as_str()),
            "{}",
            stdout(&listed)
        );
        let value = exec_in(env, name, &["systemd-creds", "--system", "cat", cred]);
        assert!(value.status.success(), "{}", stderr(&value));
        assert_eq!(&sha256_hex(&value.stdout), hash, "credential {cred}");
    }
    // The guest module's registration ran through the guest's real Nix.
    let store = if guest.vm {
        "auto"
    } else {
        "local?real=/run/miniguest-register"
    };
    let registered = exec_in(
        env,
        name,
        &[
            "nix-store",
            "--store",
            store,
            "-q",
            "--references",
            "/run/current-system",
        ],
    );
    assert!(
        registered.status.success() && !registered.stdout.is_empty(),
        "{}",
        stderr(&registered)
    );
}

/// Stage 1 was systemd's: PID 1 came from an initrd (it kept the
/// initrd's timestamp across switch-root), and the journal shows, before
/// the switch, udev and the mounts systemd's fstab generator made under
/// /sysroot, each share mounted only once `module` (which the guest
/// module's x-systemd.requires names) had loaded.
fn booted_through_systemd_stage_1(guest: &Guest, module: &str) {
    let Guest { env, name, .. } = guest;
    let initrd = exec_in(
        env,
        name,
        &["systemctl", "show", "-P", "InitRDTimestampMonotonic"],
    );
    let since: u64 = stdout(&initrd).trim().parse().unwrap_or(0);
    assert!(since > 0, "no initrd before PID 1: {}", stdout(&initrd));
    let journal = stdout(&exec_in(
        env,
        name,
        &["journalctl", "-b", "-o", "cat", "--no-pager"],
    ));
    let lines: Vec<&str> = journal.lines().collect();
    let first = |line: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(line))
            .unwrap_or_else(|| panic!("the journal has no {line:?}:\n{journal}"))
    };
    let loaded = first(&format!("Finished modprobe@{module}.service"));
    let store = first("Mounted sysroot-nix-store.mount");
    let boot = first("Mounted sysroot-boot.mount");
    let udev = first("Started systemd-udevd.service");
    let switch = first("Reached target initrd-switch-root.target");
    let up = first("Reached target multi-user.target");
    assert!(loaded < store && loaded < boot, "{journal}");
    assert!(
        store < switch && boot < switch && udev < switch && switch < up,
        "{journal}"
    );
}

/// systemd says `running`: no unit failed.
fn assert_running(guest: &Guest) {
    let state = exec_in(&guest.env, &guest.name, &["systemctl", "is-system-running"]);
    let failed = exec_in(
        &guest.env,
        &guest.name,
        &["systemctl", "--failed", "--no-legend"],
    );
    assert_eq!(
        stdout(&state).trim(),
        "running",
        "{}\n{}",
        stdout(&failed),
        guest.console()
    );
}

/// The console without its colours, as systemd writes to a terminal.
fn plain(console: &str) -> String {
    let mut out = String::with_capacity(console.len());
    let mut chars = console.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `stop` shuts the guest down through systemd within seconds: the
/// console shows systemd reaching `target`, and nothing timed out.
fn stops_through_systemd(guest: &Guest, target: &str) {
    let asked = Instant::now();
    let out = guest.env.run(&["stop", &guest.name, "--timeout", "30"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "stopping took {:?}",
        asked.elapsed()
    );
    let log = plain(&guest.console());
    assert!(log.contains(&format!("Reached target {target}")), "{log}");
    assert!(!log.to_lowercase().contains("timed out"), "{log}");
    assert_eq!(status(&guest.env, &guest.name)["state"], "stopped");
}

/// `sudo -n ARGS…` run in the guest by `user` (with the user's groups),
/// through the setuid wrapper.
fn sudo_as(guest: &Guest, user: &str, args: &[&str]) -> std::process::Output {
    let reuid = format!("--reuid={user}");
    let mut argv = vec![
        "/usr/bin/setpriv",
        &reuid,
        "--regid=users",
        "--init-groups",
        "/run/wrappers/bin/sudo",
        "-n",
    ];
    argv.extend_from_slice(args);
    exec_in(&guest.env, &guest.name, &argv)
}

/// In an unprivileged LXC container (root mapped), real systemd boots
/// NixOS's unit set with no failed unit, takes the credentials from LXC's
/// directory, and `stop` shuts it down through systemd within seconds. Its
/// ordinary user runs a command as root through sudo under a NOPASSWD rule
/// (sudo, its plugin and PAM's modules in the store, which the idmapped
/// store shows as root's); nobody, with no rule, may not.
#[test]
fn lxc_runs_real_systemd_to_running() {
    let Some(guest) = systemd_container("ctsd") else {
        return;
    };
    starts_to_running_with_credentials(&guest);
    let out = sudo_as(&guest, "alice", &["id", "-u"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "0");
    let out = sudo_as(&guest, "nobody", &["true"]);
    assert!(!out.status.success(), "nobody ran sudo");
    stops_through_systemd(&guest, "halt.target");
}

/// The host bridge the sshd test's container is attached to (as the
/// fixture's `ctsdssh` names it), with the host's address on it; removed
/// when dropped.
struct TestBridge;

impl TestBridge {
    const NAME: &'static str = "mgsdbr0";

    fn up() -> Self {
        let ip = |args: &[&str]| {
            let out = std::process::Command::new("ip")
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "ip {args:?}: {}", stderr(&out));
        };
        let _ = std::process::Command::new("ip")
            .args(["link", "del", Self::NAME])
            .output();
        ip(&["link", "add", Self::NAME, "type", "bridge"]);
        ip(&["addr", "add", "10.231.77.1/24", "dev", Self::NAME]);
        ip(&["link", "set", Self::NAME, "up"]);
        TestBridge
    }
}

impl Drop for TestBridge {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", Self::NAME])
            .output();
    }
}

/// `ssh OPTIONS alice@GUEST COMMAND…` from the host to the sshd test's
/// container, with no configuration of the host's and never a prompt.
fn ssh_to_guest(options: &[&str], command: &[&str]) -> std::process::Output {
    std::process::Command::new("ssh")
        .args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
        ])
        .args([
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=20",
        ])
        .args(options)
        .arg("alice@10.231.77.2")
        .args(command)
        .output()
        .unwrap()
}

/// NixOS's sshd in an LXC container with root mapped, on a bridge the test
/// gives it: a user logs in from the host with the key the configuration
/// declares (`users.users.alice.openssh.authorizedKeys.keyFiles`), which
/// sits in /etc/ssh/authorized_keys.d as NixOS puts it there: a copy of
/// the store's file, root's, mode 0444 (sshd's StrictModes checks it).
/// `systemctl poweroff` inside then ends the container.
#[test]
fn lxc_sshd_lets_a_user_in_with_the_key_the_configuration_declares() {
    if !lxc_ready()
        || missing(&[
            ("ssh", standin::which("ssh")),
            ("ssh-keygen", standin::which("ssh-keygen")),
            ("ip", standin::which("ip")),
        ])
        .is_some()
    {
        return;
    }
    let env = standin::systemd_env();
    let key = env.path("ssh-key");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", stderr(&made));
    std::fs::copy(
        key.with_extension("pub"),
        env.flake_dir().join("ssh-key.pub"),
    )
    .unwrap();
    let name = unique_name("ctsdssh");
    install(&env, "ctsdssh", &name);
    let _bridge = TestBridge::up();
    let log = env.path("console.log");
    lxc_define_with(&env, &name, &env.path("lxc"), &log, &[]);
    let guest = Guest {
        env,
        name,
        log,
        hashes: vec![],
        vm: false,
        _domain: None,
    };
    let out = guest.env.run(&["start", &guest.name, "--wait=120"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        stderr(&out),
        guest.console()
    );
    assert_running(&guest);
    let copied = exec_in(
        &guest.env,
        &guest.name,
        &["stat", "-c", "%F %u %a", "/etc/ssh/authorized_keys.d/alice"],
    );
    assert_eq!(stdout(&copied).trim(), "regular file 0 444");
    let login = ssh_to_guest(
        &["-i", key.to_str().unwrap(), "-o", "IdentitiesOnly=yes"],
        &["id", "-un"],
    );
    assert!(login.status.success(), "{}", stderr(&login));
    assert_eq!(stdout(&login).trim(), "alice");
    // Without the key, sshd lets nobody in: the login above was the key's.
    let keyless = ssh_to_guest(&["-o", "PubkeyAuthentication=no"], &["true"]);
    assert!(!keyless.status.success(), "a login without the key worked");
    powers_off_from_inside(&guest);
}

/// A libvirt VM on 9p: real systemd from stage 1 on, udev, credentials
/// from fw_cfg, `exec` through qemu-ga as NixOS's unit (which udev starts
/// when the agent's port appears), and `stop` through the agent: systemd's
/// poweroff.
#[test]
fn libvirt_9p_runs_real_systemd_to_running() {
    let Some(guest) = systemd_libvirt("vmsd") else {
        return;
    };
    starts_to_running_with_credentials(&guest);
    booted_through_systemd_stage_1(&guest, "9pnet_virtio");
    let agent = exec_in(
        &guest.env,
        &guest.name,
        &["systemctl", "is-active", "qemu-guest-agent.service"],
    );
    assert_eq!(stdout(&agent).trim(), "active", "{}", guest.console());
    stops_through_systemd(&guest, "poweroff.target");
}

/// The same on virtiofs, ended from inside: `systemctl poweroff` powers
/// the VM off, and `status` then says stopped.
#[test]
fn libvirt_virtiofs_runs_real_systemd_and_powers_off_from_inside() {
    let Some(guest) = systemd_libvirt("vmsdfs") else {
        return;
    };
    starts_to_running_with_credentials(&guest);
    booted_through_systemd_stage_1(&guest, "virtiofs");
    let log = powers_off_from_inside(&guest);
    assert!(log.contains("reboot: Power down"), "{log}");
}

/// `systemctl poweroff` inside ends the guest: `status` says stopped
/// within seconds, and the console shows systemd's poweroff. The console.
fn powers_off_from_inside(guest: &Guest) -> String {
    // The channel may not answer: the guest goes down under it.
    let _ = exec_in(&guest.env, &guest.name, &["systemctl", "poweroff"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while status(&guest.env, &guest.name)["state"] != "stopped" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        status(&guest.env, &guest.name)["state"],
        "stopped",
        "{}",
        guest.console()
    );
    let log = plain(&guest.console());
    assert!(log.contains("Reached target poweroff.target"), "{log}");
    log
}

/// Under `run`, QEMU with no manager: real systemd reaches `running` with
/// fw_cfg's credentials, and `systemctl poweroff` inside ends `run`
/// itself, successfully.
#[test]
fn run_runs_real_systemd_and_ends_with_its_poweroff() {
    use std::os::unix::process::CommandExt;
    if missing(&[]).is_some() {
        return;
    }
    let installed = installed_systemd_guest("vmsd");
    let mut run = installed.env.std_cmd();
    run.args(["run", &installed.name, "--network", "none", "--console-log"])
        .arg(&installed.log)
        .args(&installed.args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0);
    let mut child = KillGroup(run.spawn().unwrap());
    let guest = installed.into_guest(true, None);
    let deadline = Instant::now() + BOOT_TIMEOUT;
    let mut ready = exec_in(&guest.env, &guest.name, &["true"]);
    while !ready.status.success() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        ready = exec_in(&guest.env, &guest.name, &["true"]);
    }
    let waited = exec_in(
        &guest.env,
        &guest.name,
        &["systemctl", "is-system-running", "--wait"],
    );
    assert_eq!(stdout(&waited).trim(), "running", "{}", guest.console());
    booted_through_systemd_stage_1(&guest, "9pnet_virtio");
    for (cred, hash) in &guest.hashes {
        let value = exec_in(
            &guest.env,
            &guest.name,
            &["systemd-creds", "--system", "cat", cred],
        );
        assert_eq!(&sha256_hex(&value.stdout), hash, "credential {cred}");
    }
    let _ = exec_in(&guest.env, &guest.name, &["systemctl", "poweroff"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let ended = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let log = plain(&guest.console());
    assert!(ended.is_some_and(|s| s.success()), "{ended:?}\n{log}");
    assert!(log.contains("Reached target poweroff.target"), "{log}");
}

/// A unit of the guest's own that fails: systemd says `degraded`, and
/// `start --wait` says so and fails.
#[test]
fn start_wait_reports_degraded_when_a_unit_of_the_guest_fails() {
    let Some(Guest { env, name, log, .. }) = systemd_container("ctsdfail") else {
        return;
    };
    let out = env.run(&["start", &name, "--wait=120"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(stderr(&out).contains("degraded"), "{}", stderr(&out));
    let failed = exec_in(&env, &name, &["systemctl", "--failed", "--no-legend"]);
    assert!(
        stdout(&failed).contains("standin-broken.service"),
        "{}\n{}",
        stdout(&failed),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(status(&env, &name)["readiness"], "degraded");
    let out = env.run(&["stop", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Under systemd-nspawn, with the settings `create -t nspawn --define`
/// writes: systemd boots to multi-user.target with no failed unit (the
/// guest's Nix registers its closure under the machine's own `nix/`), and
/// nspawn's own stop (SIGTERM, passed on as SIGRTMIN+3, the settings'
/// KillSignal=) shuts it down through systemd.
#[test]
fn nspawn_runs_real_systemd() {
    if !lxc_ready() || missing(&[("systemd-nspawn", standin::which("systemd-nspawn"))]).is_some() {
        return;
    }
    let env = standin::systemd_env();
    let name = unique_name("ctsd");
    install(&env, "ctsdplain", &name);
    let _settings = NspawnSettings::of(&name);
    let out = nspawn_define(&env, &name, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let image = env.path("machines").join(&name).canonicalize().unwrap();
    // Its console and its own messages, in the order they came.
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"exec systemd-nspawn --quiet --settings=trusted --register=no --keep-unit --machine="$1" --directory="$2" 2>&1"#)
        .args(["sh", &name, image.to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let reader = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = vec![];
    let deadline = Instant::now() + BOOT_TIMEOUT;
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let reached = line.contains("Reached target") && line.contains("multi-user.target");
        lines.push(line);
        if reached {
            break;
        }
    }
    let booted = lines.join("\n");
    let stopping = Instant::now();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = child.wait().unwrap();
    lines.extend(rx.iter());
    let text = lines.join("\n");
    assert!(status.success(), "nspawn: {status:?}\n{text}");
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "took {:?}\n{text}",
        stopping.elapsed()
    );
    assert!(
        booted.contains("Reached target") && booted.contains("multi-user.target"),
        "{text}"
    );
    // Until it is asked to stop; a container's shutdown then fails to
    // unmount what its manager mounted, as any container's does.
    assert!(!booted.contains("FAILED"), "{booted}");
    assert!(text.contains("Halting system"), "{text}");
}

/// Which boot, and when in it PID 1 started: the same across a switch,
/// new after a reboot (a VM's boot id changes; a container shares the
/// host's, and its PID 1 starts anew).
fn init_started(env: &TestEnv, name: &str) -> String {
    let out = exec_in(
        env,
        name,
        &[
            "sh",
            "-c",
            "cat /proc/sys/kernel/random/boot_id; cut -d ' ' -f 22 /proc/1/stat",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).trim().to_owned()
}

fn set_unit(env: &TestEnv, unit: &str) {
    let params = serde_json::json!({ "version": "1", "unit": unit });
    std::fs::write(env.flake_dir().join("params.json"), params.to_string()).unwrap();
}

/// `upgrade --switch` to a generation that adds a unit: the guest's
/// switch-to-configuration, through real systemctl, starts it in the
/// running guest, which is not restarted. A checked switch to one whose
/// unit fails: systemd says degraded, and the guest and its profile are
/// put back.
fn switch_starts_a_new_unit_and_rolls_back_a_failing_one(guest: Guest) {
    let Guest { env, name, .. } = &guest;
    let out = env.run(&["start", name, "--wait=240"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        stderr(&out),
        guest.console()
    );
    let started = init_started(env, name);

    set_unit(env, "starts");
    let out = env.run(&["upgrade", "--switch", "--wait=120", name]);
    assert!(
        out.status.success(),
        "{}\n{}",
        stderr(&out),
        guest.console()
    );
    assert!(
        stdout(&out).contains("without a reboot"),
        "{}",
        stdout(&out)
    );
    assert_eq!(init_started(env, name), started, "the guest restarted");
    let active = exec_in(env, name, &["systemctl", "is-active", "standin-added"]);
    assert_eq!(stdout(&active).trim(), "active", "{}", guest.console());
    let switched = env.current_output(name);

    set_unit(env, "fails");
    let out = env.run(&["upgrade", "--switch", "--wait=120", name]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("failed its check")
            && stderr(&out).contains("reports degraded")
            && stderr(&out).contains("switch-to-configuration failed")
            && stderr(&out).contains("(exit status 4)"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("rolled back"), "{}", stderr(&out));
    assert_eq!(
        env.current_output(name),
        switched,
        "the profile was not put back"
    );
    assert_eq!(init_started(env, name), started, "the guest restarted");
    assert_running(&guest);
    let active = exec_in(env, name, &["systemctl", "is-active", "standin-added"]);
    assert_eq!(stdout(&active).trim(), "active");
    let out = env.run(&["stop", name]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn upgrade_switch_starts_a_new_unit_and_rolls_back_a_failing_one() {
    if let Some(guest) = systemd_container("ctsd") {
        switch_starts_a_new_unit_and_rolls_back_a_failing_one(guest);
    }
}

#[test]
fn upgrade_switch_on_a_libvirt_systemd_vm_starts_a_new_unit_and_rolls_back_a_failing_one() {
    if let Some(guest) = systemd_libvirt("vmsd") {
        switch_starts_a_new_unit_and_rolls_back_a_failing_one(guest);
    }
}
