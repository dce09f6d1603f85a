//! A guest's flake and its output are untrusted. Each test here is one way
//! an attacker's output could try to reach the host, tried for real against
//! Nix, LXC's parser and the shell, and refused.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::{fixture, nix_available, stderr, stdout, TestEnv};

macro_rules! need_nix {
    () => {
        if !nix_available() {
            return;
        }
    };
}

fn hostile() -> TestEnv {
    TestEnv::with_store(true, &fixture("hostile"))
}

fn assert_refused(out: &std::process::Output, want: &str) {
    assert!(!out.status.success(), "expected a refusal, got {out:?}");
    let err = stderr(out);
    let ours: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(ours.len(), 1, "want one error line in {err:?}");
    assert!(ours[0].contains(want), "want {want:?} in {:?}", ours[0]);
}

fn refused_install_leaves_nothing(env: &TestEnv, attr: &str, want: &str) {
    assert_refused(&env.run(&["install", &env.flake(attr)]), want);
    assert_eq!(
        env.visible_state(),
        Vec::<String>::new(),
        "{attr} left state"
    );
}

fn install(env: &TestEnv, attr: &str) {
    let out = env.run(&["install", &env.flake(attr)]);
    assert!(out.status.success(), "install {attr}: {}", stderr(&out));
}

/// A subid pair in the test's directory; the tool reads it instead of /etc.
fn subids(env: &TestEnv, text: &str) -> PathBuf {
    let dir = env.path("subid");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("subuid"), text).unwrap();
    std::fs::write(dir.join("subgid"), text).unwrap();
    dir
}

#[test]
fn outputs_that_reach_outside_the_store_are_never_installed() {
    need_nix!();
    let env = hostile();
    for (attr, want) in [
        (
            "bootroot",
            "boot of the guest output resolves to /, outside the Nix store",
        ),
        ("bootstore", "boot of the guest output resolves to"),
        (
            "initrdshadow",
            "initrd of the guest output resolves to /etc/shadow",
        ),
        (
            "kernelrelative",
            "kernel of the guest output resolves to /etc/passwd",
        ),
        ("noinit", "guest output is missing boot/init"),
        ("nokernel", "guest output is missing kernel"),
        (
            "zeromanifest",
            "miniguest.json of the guest output resolves to /dev/zero",
        ),
    ] {
        refused_install_leaves_nothing(&env, attr, want);
    }
}

#[test]
fn hostile_manifest_values_are_refused_by_field() {
    need_nix!();
    let env = hostile();
    for (attr, want) in [
        ("macinjection", "interfaces[0]: mac:"),
        ("bridgeinjection", "interfaces[0]: source:"),
        ("paraminjection", "kernelParams[0]:"),
        (
            "hugevolume",
            "volumes[0].sizeMiB: 17592186044416 MiB does not fit",
        ),
        ("dotdotmount", "volumes[0].mountPoint:"),
        (
            "rootmount",
            "volumes[0].mountPoint: \"/\" must not be the guest's root",
        ),
        (
            "typeerror",
            "volumes[0].sizeMiB: invalid type: string \"big\"",
        ),
        (
            "credpath",
            "credentials[0]: \"/etc/shadow\" is not a credential name",
        ),
        ("credobject", "credentials[0]: invalid type: map"),
    ] {
        refused_install_leaves_nothing(&env, attr, want);
    }
    assert!(!Path::new("/tmp/PWNED").exists());
}

#[test]
fn create_and_run_check_the_output_again() {
    need_nix!();
    let env = hostile();
    // As a declared guest would be: a link into the store, never installed.
    let built = std::process::Command::new("nix")
        .envs(env.nix_env())
        .args(["build", "--json", "--no-link"])
        .arg(env.flake("nixosConfigurations.bootroot.config.system.build.miniguest"))
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", stderr(&built));
    let json: serde_json::Value = serde_json::from_slice(&built.stdout).unwrap();
    let out = json[0]["outputs"]["out"].as_str().unwrap();
    std::fs::create_dir_all(env.guests_dir()).unwrap();
    std::os::unix::fs::symlink(out, env.link("evil")).unwrap();
    for args in [
        &["create", "evil", "--xml"][..],
        &["create", "-t", "qemu", "evil"],
        &["run", "evil"],
    ] {
        let out = env.run(args);
        assert_refused(&out, "outside the Nix store");
        assert_eq!(stdout(&out), "", "{args:?} printed before refusing");
    }
}

#[test]
fn dangerous_shares_need_explicit_permission() {
    need_nix!();
    let env = hostile();
    for (attr, path) in [("shareetc", "/etc"), ("shareroot", "/")] {
        install(&env, attr);
        let out = env.run(&["create", attr, "--xml"]);
        assert_refused(
            &out,
            &format!("shares[0].source: refusing to share {path} "),
        );
        assert_eq!(stdout(&out), "");
    }
    install(&env, "sharestore");
    let store = env.store_dir();
    assert_refused(&env.run(&["create", "sharestore", "--xml"]), "is inside");
    assert!(!stdout(&env.run(&["create", "sharestore", "--xml"])).contains(store.to_str().unwrap()));

    // Allowed by name: accepted, and shown with the rest of what it reaches.
    let out = env.run(&["create", "shareetc", "--xml", "--allow-share", "/etc"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("read-write /etc  (share etc)"), "{err}");
    assert!(
        err.contains("read-only  /nix/store")
            || err.contains(&format!("read-only  {}", store.display())),
        "{err}"
    );

    install(&env, "sharedata");
    let out = env.run(&["create", "sharedata", "--xml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("/srv/miniguest-test-data"));
}

#[test]
fn a_share_that_links_to_a_system_directory_is_judged_by_its_target() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("innocent");
    std::os::unix::fs::symlink("/etc", &link).unwrap();
    let manifest = format!(
        r#"{{"version":1,"guestType":"qemu","shares":[{{"tag":"t","source":"{}","mountPoint":"/t"}}]}}"#,
        link.display()
    );
    let spec = common::spec_from_manifest(&manifest);
    let err = format!(
        "{:#}",
        miniguest::backend::exposure::check_shares(&spec, &[]).unwrap_err()
    );
    assert!(err.contains("it is inside /etc"), "{err}");
    assert!(miniguest::backend::exposure::check_shares(&spec, &[link]).is_ok());
}

#[test]
fn id_maps_that_hold_host_root_are_refused_and_overlaps_warned() {
    need_nix!();
    let env = hostile();
    install(&env, "goodct");
    let create = |subid: &str| {
        env.cmd()
            .args(["create", "goodct", "--config"])
            .env("MINIGUEST_SUBID_DIR", subids(&env, subid))
            .output()
            .unwrap()
    };
    let out = create("root:0:65536\n");
    assert_refused(&out, "contains host id 0");
    assert_eq!(stdout(&out), "");

    let out = create("alice:100000:65536\nroot:150000:65536\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("overlaps alice's range 100000:65536"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("lxc.idmap = u 0 150000 65536"));
}

#[test]
fn the_nspawn_script_never_chowns_through_a_link_the_container_planted() {
    need_nix!();
    let env = hostile();
    install(&env, "goodct");
    let victim = env.path("host-dir");
    std::fs::create_dir_all(&victim).unwrap();
    let root = env.path("state/goodct/.nspawn-root");
    std::fs::create_dir_all(&root).unwrap();
    std::os::unix::fs::symlink(&victim, root.join("usr")).unwrap();

    let dir = subids(&env, "root:300000:65536\n");
    let out = env
        .cmd()
        .args(["create", "-t", "nspawn", "goodct"])
        .env("MINIGUEST_SUBID_DIR", &dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // Run it as a user would, with systemd-nspawn itself stubbed out.
    let stubs = common::stub_dir(&env, &["systemd-nspawn"]);
    run_printed(&stdout(&out), &stubs);
    let meta = std::fs::metadata(&victim).unwrap();
    if nix_running_as_root() {
        assert_eq!(
            meta.uid(),
            0,
            "the host directory was handed to the container"
        );
        assert_eq!(std::fs::metadata(&root).unwrap().uid(), 300000);
    }
}

/// Runs a printed script as a user would, with the stubbed programs first
/// on PATH.
fn run_printed(script: &str, stubs: &Path) {
    let ran = std::process::Command::new("sh")
        .args(["-c", script])
        .env(
            "PATH",
            format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", stubs.display()),
        )
        .output()
        .unwrap();
    assert!(ran.status.success(), "{}", stderr(&ran));
}

fn nix_running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

#[test]
fn names_that_clash_with_nix_profile_files_are_refused_with_the_rule() {
    need_nix!();
    let env = hostile();
    install(&env, "good");
    for name in ["good-5-linkx", "good.lock", "web.1", "web_1"] {
        let out = env.run(&["install", "-n", name, &env.flake("good")]);
        assert_refused(&out, "letters, digits and '-'");
    }
    assert_eq!(env.generations("good"), vec![1]);
    assert_eq!(
        env.visible_state(),
        vec!["good".to_string(), "good".into(), "good-1-link".into()]
    );
}

#[test]
fn remove_leaves_profiles_it_never_installed() {
    need_nix!();
    let env = hostile();
    install(&env, "good");
    let output = env.current_output("good");
    // Someone else's profile in the same directory.
    let set = std::process::Command::new("nix-env")
        .envs(env.nix_env())
        .arg("--profile")
        .arg(env.profile("theirs"))
        .arg("--set")
        .arg(&output)
        .output()
        .unwrap();
    assert!(set.status.success(), "{}", stderr(&set));
    assert_refused(
        &env.run(&["remove", "theirs"]),
        "was not installed by miniguest",
    );
    assert!(env.profile("theirs").exists());
}

#[test]
fn volume_images_are_private_and_sizes_checked() {
    need_nix!();
    let env = hostile();
    install(&env, "volume");
    let stubs = common::stub_dir(&env, &["qemu-system-x86_64"]);
    // `run` creates the image itself; the printed command does the same.
    let out = env
        .cmd()
        .args(["run", "volume"])
        .env(
            "PATH",
            format!("{}:{}", stubs.display(), std::env::var("PATH").unwrap()),
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let image = env.path("state/volume/v.img");
    let meta = std::fs::metadata(&image).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.len(), 1024 * 1024);
    std::fs::remove_file(&image).unwrap();

    let out = env.run(&["create", "-t", "qemu", "volume"]);
    assert!(out.status.success(), "{}", stderr(&out));
    run_printed(&stdout(&out), &stubs);
    let meta = std::fs::metadata(&image).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.len(), 1024 * 1024);
}

#[test]
fn listing_never_fails_on_nix_locks_or_concurrent_rollbacks() {
    need_nix!();
    let env = hostile();
    install(&env, "good");
    let out = env.run(&["install", "--force", "-n", "good", &env.flake("goodct")]);
    assert!(out.status.success(), "{}", stderr(&out));
    // What Nix leaves beside a profile.
    std::fs::write(env.profiles_dir().join("good.lock"), "").unwrap();
    std::os::unix::fs::symlink("/nonexistent", env.profiles_dir().join("good.tmp-1-2")).unwrap();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let stop = stop.clone();
        let mut cmd_env: Vec<(&str, PathBuf)> = env.nix_env();
        cmd_env.push(("PATH", PathBuf::from(std::env::var("PATH").unwrap())));
        let bin = assert_cmd::cargo::cargo_bin("miniguest");
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let to = if n % 2 == 0 { "1" } else { "2" };
                let _ = std::process::Command::new(&bin)
                    .envs(cmd_env.iter().cloned())
                    .args(["rollback", "good", "--to", to])
                    .output();
                n += 1;
            }
            n
        })
    };
    for i in 0..150 {
        let out = env.run(&["list", "--json"]);
        assert!(out.status.success(), "list {i} failed: {}", stderr(&out));
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(flipper.join().unwrap() > 0);
}

#[test]
fn relative_directories_and_option_shaped_references() {
    need_nix!();
    let env = hostile();
    let out = env
        .cmd()
        .current_dir(env.path(""))
        .env_remove("MINIGUEST_GUESTS_DIR")
        .env_remove("MINIGUEST_PROFILES_DIR")
        .args([
            "--guests-dir",
            "rel-guests",
            "--profiles-dir",
            "rel-profiles",
        ])
        .args(["install", &env.flake("good")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let link = env.path("rel-guests/good");
    assert!(std::fs::read_link(&link).unwrap().is_absolute());
    assert!(link.join("miniguest.json").is_file(), "the link dangles");

    // An option-shaped reference is never a flake: clap refuses it on the
    // command line (after `--` it is Nix's), and a recorded one reaches
    // Nix only after `--`.
    let out = env.run(&["install", "--impure#good"]);
    assert!(!out.status.success());
    std::fs::write(
        env.path("rel-profiles/.miniguest/good.json"),
        r#"{"flake":"--impure","attribute":"nixosConfigurations.good.config.system.build.miniguest"}"#,
    )
    .unwrap();
    let out = env
        .cmd()
        .env("MINIGUEST_GUESTS_DIR", env.path("rel-guests"))
        .env("MINIGUEST_PROFILES_DIR", env.path("rel-profiles"))
        .args(["upgrade", "good"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        !stderr(&out).contains("unrecognised flag") && !stderr(&out).contains("nix --help"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("--impure"), "{}", stderr(&out));
}

#[test]
fn an_unwritable_guests_directory_leaves_no_half_installed_guest() {
    need_nix!();
    if !nix_running_as_root() {
        eprintln!("skipped: mounting a read-only guests directory needs root");
        return;
    }
    let env = hostile();
    std::fs::create_dir_all(env.guests_dir()).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "ro,size=64k", "tmpfs"])
        .arg(env.guests_dir())
        .status()
        .unwrap();
    assert!(mounted.success());
    let out = env.run(&["install", &env.flake("good")]);
    std::process::Command::new("umount")
        .arg(env.guests_dir())
        .status()
        .unwrap();
    assert_refused(&out, "cannot create guest links in");
    assert!(!env.profile("good").exists(), "a profile without its link");
    let out = env.run(&["install", &env.flake("good")]);
    assert!(out.status.success(), "the next install: {}", stderr(&out));
}

#[test]
fn the_printed_qemu_command_leaves_nothing_in_the_temporary_directory() {
    need_nix!();
    let env = hostile();
    install(&env, "goodfs");
    let tmp = env.path("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let out = env
        .cmd()
        .args(["create", "-t", "qemu", "goodfs"])
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
    assert!(stdout(&out).contains("mktemp -d"), "{}", stdout(&out));
}
