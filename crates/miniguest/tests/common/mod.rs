//! Test environment: a private Nix store and state directory per test, so
//! tests run in parallel and never touch the machine's /nix.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

pub mod standin;

pub struct TestEnv {
    pub dir: tempfile::TempDir,
    /// A private store (CLI tests) or the machine's /nix/store (boot tests:
    /// a guest mounts the host's store at /nix/store, so paths must match).
    isolated_store: bool,
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_dir(&entry.path(), &target);
        } else if kind.is_symlink() {
            // As links: some lead nowhere here (systemd's masks, to /dev/null).
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), &target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Whether the real `nix` is installed; tests that need it say so when it
/// is not, and CI (MINIGUEST_REQUIRE_NIX=1) turns that into a failure.
/// Under MINIGUEST_TEST_NIX=VERSION (scripts/test.sh runs the suite under
/// each Nix it proves) the `nix` found must be that version.
pub fn nix_available() -> bool {
    let out = std::process::Command::new("nix").arg("--version").output();
    let ok = out.as_ref().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("MINIGUEST_REQUIRE_NIX").is_none(),
            "nix is required here but not installed (run scripts/setup-host.sh)"
        );
        eprintln!("skipped: `nix` is not installed (run scripts/setup-host.sh)");
        return false;
    }
    check_nix_version(&String::from_utf8_lossy(&out.unwrap().stdout));
    true
}

/// Fails when `nix --version` printed another version than the one the
/// suite is being run under.
pub fn check_nix_version(printed: &str) {
    if let Ok(want) = std::env::var("MINIGUEST_TEST_NIX") {
        let version = printed.split_whitespace().last().unwrap_or_default();
        assert!(
            version == want || version.starts_with(&format!("{want}.")),
            "MINIGUEST_TEST_NIX={want} but `nix --version` says {printed:?}"
        );
    }
}

impl TestEnv {
    pub fn new() -> Self {
        Self::with_store(true, &fixture("tiny"))
    }

    pub fn with_store(isolated_store: bool, flake: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Hypervisors running as other users must reach the guest links.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let env = TestEnv {
            dir,
            isolated_store,
        };
        let conf = env.path("nix-conf");
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::write(env.path("registry.json"), r#"{"flakes":[],"version":2}"#).unwrap();
        std::fs::write(
            conf.join("nix.conf"),
            format!(
                "experimental-features = nix-command flakes\nsubstituters =\nflake-registry = {}\nsandbox = false\nbuild-users-group =\n",
                env.path("registry.json").display()
            ),
        )
        .unwrap();
        copy_dir(flake, &env.flake_dir());
        env
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn flake_dir(&self) -> PathBuf {
        self.path("flake")
    }

    /// `path:` so that Nix does not treat the fixture as part of a git tree.
    pub fn flake(&self, attr: &str) -> String {
        format!("path:{}#{attr}", self.flake_dir().display())
    }

    pub fn set_version(&self, version: &str) {
        std::fs::write(self.flake_dir().join("version"), version).unwrap();
    }

    pub fn guests_dir(&self) -> PathBuf {
        self.path("etc-miniguests")
    }

    pub fn profiles_dir(&self) -> PathBuf {
        self.path("profiles")
    }

    pub fn store_dir(&self) -> PathBuf {
        self.path("store")
    }

    pub fn nix_env(&self) -> Vec<(&'static str, PathBuf)> {
        let mut vars = vec![];
        if self.isolated_store {
            vars.extend([
                ("NIX_STORE_DIR", self.store_dir()),
                ("NIX_STATE_DIR", self.path("var")),
                ("NIX_LOG_DIR", self.path("log")),
            ]);
        }
        vars.extend([
            ("NIX_CONF_DIR", self.path("nix-conf")),
            ("XDG_CACHE_HOME", self.path("cache")),
            ("HOME", self.path("home")),
            ("MINIGUEST_GUESTS_DIR", self.guests_dir()),
            ("MINIGUEST_PROFILES_DIR", self.profiles_dir()),
            ("MINIGUEST_STATE_DIR", self.path("state")),
        ]);
        vars
    }

    pub fn cmd(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::cargo_bin("miniguest").unwrap();
        cmd.envs(self.nix_env())
            .env_remove("NIX_CONFIG")
            .env_remove("NIX_PATH");
        cmd
    }

    pub fn std_cmd(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("miniguest"));
        cmd.envs(self.nix_env())
            .env_remove("NIX_CONFIG")
            .env_remove("NIX_PATH");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    pub fn link(&self, name: &str) -> PathBuf {
        self.guests_dir().join(name)
    }

    pub fn profile(&self, name: &str) -> PathBuf {
        self.profiles_dir().join(name)
    }

    /// Generation numbers present for a guest, from the profile links.
    pub fn generations(&self, name: &str) -> Vec<u64> {
        let mut gens: Vec<u64> = std::fs::read_dir(self.profiles_dir())
            .map(|rd| {
                rd.filter_map(|e| {
                    let n = e.ok()?.file_name().into_string().ok()?;
                    n.strip_prefix(&format!("{name}-"))?
                        .strip_suffix("-link")?
                        .parse()
                        .ok()
                })
                .collect()
            })
            .unwrap_or_default();
        gens.sort();
        gens
    }

    pub fn current_output(&self, name: &str) -> PathBuf {
        self.profile(name).canonicalize().unwrap()
    }

    /// Everything under the guests and profiles directories, for asserting
    /// that a failed command left nothing behind.
    pub fn visible_state(&self) -> Vec<String> {
        let mut names = Vec::new();
        for dir in [self.guests_dir(), self.profiles_dir()] {
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for e in rd.flatten() {
                    let n = e.file_name().into_string().unwrap();
                    if n != ".miniguest" {
                        names.push(n);
                    }
                }
            }
        }
        names.sort();
        names
    }
}

/// A GuestSpec for guest `web`, as `create` would resolve it, without a
/// store or an installed guest.
pub fn spec_from_manifest(manifest: &str) -> miniguest::backend::GuestSpec {
    let manifest = miniguest::contract::Manifest::parse(manifest).unwrap();
    // As `create` would see it on a host whose libvirt has no default
    // network: none asked for, none given, unless the manifest says.
    miniguest::backend::GuestSpec::builder("web".parse().unwrap(), manifest)
        .root("/etc/miniguests/web")
        .store_dir("/nix/store")
        .virt_type(miniguest::backend::VirtType::Kvm)
        .volume_dir("/var/lib/miniguest/web")
        .read_only_virtiofsd(Some(PathBuf::from(
            "/run/current-system/sw/bin/miniguest-virtiofsd",
        )))
        .virtiofsd(Some(PathBuf::from("/run/current-system/sw/bin/virtiofsd")))
        .qboot(Some(PathBuf::from("/usr/share/qemu/qboot.rom")))
        .build()
}

/// A directory of stand-ins for the named programs: each appends a record
/// of its arguments and standard input to `calls.log` beside it and exits 0
/// (read the log with `calls`).
pub fn stub_dir(env: &TestEnv, programs: &[&str]) -> PathBuf {
    let dir = env.path("stubs");
    std::fs::create_dir_all(&dir).unwrap();
    for program in programs {
        let path = dir.join(program);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\n{{ printf 'CALL\\000%s\\000' {program}; for a in \"$@\"; do printf '%s\\000' \"$a\"; done; printf 'STDIN\\000'; /bin/cat; printf '\\000END\\000'; }} >> {}/calls.log\n",
                dir.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

/// One call a stub recorded: the program and its arguments, and its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub argv: Vec<String>,
    pub stdin: String,
}

pub fn calls(stubs: &Path) -> Vec<Call> {
    let log = std::fs::read(stubs.join("calls.log")).unwrap_or_default();
    let text = String::from_utf8(log).unwrap();
    let mut out = Vec::new();
    for record in text.split("CALL\0").filter(|r| !r.is_empty()) {
        let (head, rest) = record.split_once("STDIN\0").expect("a record");
        let stdin = rest.strip_suffix("\0END\0").expect("a record's end");
        out.push(Call {
            argv: head.split_terminator('\0').map(str::to_owned).collect(),
            stdin: stdin.to_owned(),
        });
    }
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The SHA-256 of `bytes` in hex, as coreutils' (and busybox's)
/// `sha256sum` print it.
#[allow(dead_code)]
pub fn sha256_hex(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}
