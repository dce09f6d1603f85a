//! The stand-in guest for boot tests: assembled from the fixture flake, the
//! project's contract.nix, the host's static busybox and Debian's kernel
//! (unpacked by scripts/setup-host.sh), and built into the real /nix/store.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::TestEnv;

pub fn kernel_dir() -> PathBuf {
    std::env::var_os("MINIGUEST_TEST_KERNEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/miniguest-test/kernel"))
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Says why boot tests cannot run here, or None when they can. Under
/// MINIGUEST_REQUIRE_E2E (set by CI) a missing piece is a failure instead.
pub fn missing(extra: &[(&str, bool)]) -> Option<String> {
    let mut checks: Vec<(&str, bool)> = vec![
        ("root (the tests build into /nix/store)", is_root()),
        ("nix", which("nix")),
        ("qemu-system-x86_64", which("qemu-system-x86_64")),
        (
            "busybox at /bin/busybox",
            Path::new("/bin/busybox").is_file(),
        ),
        (
            "the test kernel (scripts/setup-host.sh)",
            kernel_dir().join("vmlinuz").is_file(),
        ),
    ];
    checks.extend_from_slice(extra);
    let missing: Vec<&str> = checks
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(what, _)| *what)
        .collect();
    if missing.is_empty() {
        if let Ok(out) = Command::new("nix").arg("--version").output() {
            super::check_nix_version(&String::from_utf8_lossy(&out.stdout));
        }
        return None;
    }
    let why = format!("missing: {}", missing.join(", "));
    assert!(
        std::env::var_os("MINIGUEST_REQUIRE_E2E").is_none(),
        "boot test cannot run: {why}"
    );
    eprintln!("skipped: {why}");
    Some(why)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

pub fn which(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn libvirt_up() -> bool {
    Command::new("virsh")
        .args(["-c", "qemu:///system", "version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A guest name unique on this machine, since libvirt domains are global.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// A test environment whose flake is the stand-in guest, assembled by the
/// same script the demo uses.
pub fn env() -> TestEnv {
    laid_out(false)
}

/// The same, with what the systemd stand-in runs: Debian's systemd and Nix.
pub fn systemd_env() -> TestEnv {
    laid_out(true)
}

fn laid_out(systemd: bool) -> TestEnv {
    let staging = tempfile::tempdir().unwrap();
    let mut script = Command::new(repo_root().join("scripts/standin-flake.sh"));
    script.arg(staging.path());
    if systemd {
        script.env("MINIGUEST_STANDIN_SYSTEMD", "1");
    }
    let out = script.output().unwrap();
    assert!(
        out.status.success(),
        "standin-flake.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    TestEnv::with_store(false, staging.path())
}

pub fn set_version(env: &TestEnv, version: &str) {
    std::fs::write(
        env.flake_dir().join("params.json"),
        format!("{{\"version\":\"{version}\"}}"),
    )
    .unwrap();
}

/// What the stand-in's stage 2 printed on one boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub name: String,
    pub version: String,
    pub store_writable: String,
    pub boot_writable: String,
    pub remount: String,
    /// Whether remounting the store read-write succeeded ("allowed") or not.
    pub remount_rw: String,
    /// Owner (uid:gid) of a store file and of /boot, as the guest sees them.
    pub store_owner: String,
    pub boot_owner: String,
    pub disks: String,
    pub state_writable: String,
    /// The file system type mounted at /var, or "none".
    pub var: String,
    /// The memory the guest sees, in KiB.
    pub mem_kib: String,
    /// Which stage 1 booted it (systemd or scripted), and the units a
    /// systemd stage 1 ran, in order.
    pub stage1: String,
    pub stage1_units: Vec<String>,
    /// How many paths its /nix/store holds, and the SHA-256 of their
    /// sorted names (one a line).
    pub store_count: String,
    pub store_hash: String,
    /// The system credentials it found: name and SHA-256 of the value.
    pub credentials: std::collections::BTreeMap<String, String>,
}

fn field(line: &str, key: &str) -> String {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .unwrap_or("?")
        .to_owned()
}

/// Every completed boot in a console transcript, in order.
pub fn reports(console: &str) -> Vec<Report> {
    let mut out = Vec::new();
    let mut booted: Option<&str> = None;
    let mut state: Option<&str> = None;
    let mut stage1: Option<&str> = None;
    let mut credentials = std::collections::BTreeMap::new();
    let mut store: Option<&str> = None;
    for line in console.lines() {
        let line = line.trim_start_matches(|c: char| c != 'S');
        if line.starts_with("STANDIN-STAGE1") {
            stage1 = Some(line);
        } else if line.starts_with("STANDIN-BOOTED") {
            booted = Some(line);
        } else if line.starts_with("STANDIN-STORE") {
            store = Some(line);
        } else if line.starts_with("STANDIN-CREDENTIAL") {
            credentials.insert(field(line, "name"), field(line, "sha256"));
        } else if line.starts_with("STANDIN-STATE") {
            state = Some(line);
        } else if line.starts_with("STANDIN-CHECK") {
            if let Some(b) = booted.take() {
                out.push(Report {
                    name: field(b, "name"),
                    version: field(b, "version"),
                    store_writable: field(line, "store-writable"),
                    boot_writable: field(line, "boot-writable"),
                    remount: field(line, "store-writable-after-remount"),
                    remount_rw: field(line, "remount-rw"),
                    store_owner: field(line, "store-owner"),
                    boot_owner: field(line, "boot-owner"),
                    disks: state.map_or("?".into(), |s| field(s, "disks")),
                    var: state.map_or("?".into(), |s| field(s, "var")),
                    mem_kib: state.map_or("?".into(), |s| field(s, "mem-kib")),
                    stage1: stage1.map_or("none".into(), |s| field(s, "mode")),
                    stage1_units: stage1
                        .take()
                        .map(|s| field(s, "units"))
                        .unwrap_or_default()
                        .split(',')
                        .filter(|u| !u.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    state_writable: state
                        .take()
                        .map_or("?".into(), |s| field(s, "state-writable")),
                    credentials: std::mem::take(&mut credentials),
                    store_count: store.map_or("?".into(), |s| field(s, "count")),
                    store_hash: store.take().map_or("?".into(), |s| field(s, "sha256")),
                });
            }
        }
    }
    out
}

/// Waits until a console log holds `count` complete boots.
pub fn wait_for_reports(log: &Path, count: usize, timeout: Duration) -> Vec<Report> {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.matches("STANDIN-DONE").count() >= count {
            return reports(&text);
        }
        if start.elapsed() > timeout {
            panic!("no {count} boot(s) within {timeout:?}; console so far:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs a shell command with a time limit, returning its output.
pub fn sh_with_timeout(script: &str, cwd: &Path, secs: u64) -> std::process::Output {
    Command::new("timeout")
        .arg(secs.to_string())
        .args(["sh", "-c", script])
        .current_dir(cwd)
        .output()
        .unwrap()
}

/// Undefines a libvirt domain when dropped, so failed tests leave none behind.
pub struct Domain(pub String);

impl Domain {
    pub fn virsh(&self, args: &[&str]) -> std::process::Output {
        Command::new("virsh")
            .args(["-c", "qemu:///system"])
            .args(args)
            .output()
            .unwrap()
    }

    pub fn start(&self) {
        let out = self.virsh(&["start", &self.0]);
        assert!(
            out.status.success(),
            "virsh start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn wait_shut_off(&self, timeout: Duration) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            let state = self.virsh(&["domstate", &self.0]);
            if String::from_utf8_lossy(&state.stdout).contains("shut off") {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("domain {} did not shut off", self.0);
    }
}

impl Drop for Domain {
    fn drop(&mut self) {
        let _ = self.virsh(&["destroy", &self.0]);
        let _ = self.virsh(&["undefine", &self.0]);
    }
}
