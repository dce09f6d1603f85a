//! The CLI against real Nix, each test in its own store.

mod common;

use common::{nix_available, stderr, stdout, TestEnv};

macro_rules! need_nix {
    () => {
        if !nix_available() {
            return;
        }
    };
}

fn assert_one_line_error(out: &std::process::Output) {
    assert!(!out.status.success(), "expected failure, got {out:?}");
    let err = stderr(out);
    let ours: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(ours.len(), 1, "want exactly one error line in {err:?}");
}

#[test]
fn install_creates_profile_link_and_generation() {
    need_nix!();
    let env = TestEnv::new();
    let out = env.run(&["install", &env.flake("vm")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("installed guest vm (generation 1)"));
    assert_eq!(
        std::fs::read_link(env.link("vm")).unwrap(),
        env.profile("vm")
    );
    assert_eq!(env.generations("vm"), vec![1]);
    let output = env.current_output("vm");
    assert!(output.starts_with(env.store_dir()));
    assert!(env.link("vm").join("miniguest.json").is_file());
    assert!(env.link("vm").join("boot/init").is_file());
}

#[test]
fn install_without_attribute_uses_default() {
    need_nix!();
    let env = TestEnv::new();
    let flake = format!("path:{}", env.flake_dir().display());
    assert!(env.run(&["install", &flake]).status.success());
    assert_eq!(env.generations("default"), vec![1]);
}

#[test]
fn full_attribute_path_and_rename() {
    need_nix!();
    let env = TestEnv::new();
    let full = env.flake("nixosConfigurations.ct.config.system.build.miniguest");
    assert!(env.run(&["install", &full]).status.success());
    assert_eq!(env.generations("ct"), vec![1]);
    let out = env.run(&["install", "-n", "web", &env.flake("vm")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(env.link("web").exists());
    assert!(!env.link("vm").exists());
}

#[test]
fn second_install_needs_force_and_force_adds_a_generation() {
    need_nix!();
    let env = TestEnv::new();
    assert!(env.run(&["install", &env.flake("vm")]).status.success());
    let first = env.current_output("vm");

    env.set_version("2");
    let out = env.run(&["install", &env.flake("vm")]);
    assert_one_line_error(&out);
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(env.generations("vm"), vec![1]);
    assert_eq!(env.current_output("vm"), first);

    let out = env.run(&["install", "--force", &env.flake("vm")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.generations("vm"), vec![1, 2]);
    assert_ne!(env.current_output("vm"), first);
    // Still rollback-able.
    assert!(env.run(&["rollback", "vm"]).status.success());
    assert_eq!(env.current_output("vm"), first);
}

#[test]
fn failed_installs_leave_nothing_behind() {
    need_nix!();
    let env = TestEnv::new();
    for attr in ["missing", "broken", "plain"] {
        let out = env.run(&["install", &env.flake(attr)]);
        assert!(!out.status.success(), "{attr} should fail");
        assert!(stderr(&out).lines().any(|l| l.starts_with("error: ")));
        assert_eq!(env.visible_state(), Vec::<String>::new(), "{attr}");
    }
    // Nix's own error reaches the user.
    let out = env.run(&["install", &env.flake("broken")]);
    assert!(
        stderr(&out).contains("deliberate build failure"),
        "{}",
        stderr(&out)
    );
    let out = env.run(&["install", &env.flake("plain")]);
    assert!(
        stderr(&out).contains("not a Miniguest guest output"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn upgrade_adds_a_generation_only_when_the_output_changes() {
    need_nix!();
    let env = TestEnv::new();
    assert!(env.run(&["install", &env.flake("vm")]).status.success());

    let out = env.run(&["upgrade", "vm"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("up to date"), "{}", stdout(&out));
    assert_eq!(env.generations("vm"), vec![1]);

    env.set_version("2");
    let out = env.run(&["upgrade", "vm"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("upgraded to generation 2"),
        "{}",
        stdout(&out)
    );
    assert_eq!(env.generations("vm"), vec![1, 2]);

    let out = env.run(&["upgrade", "vm"]);
    assert!(stdout(&out).contains("up to date (generation 2)"));
    assert_eq!(env.generations("vm"), vec![1, 2]);
}

#[test]
fn upgrade_all_and_from_another_directory() {
    need_nix!();
    let env = TestEnv::new();
    // A relative flake reference is recorded as an absolute one.
    let out = env
        .cmd()
        .current_dir(env.flake_dir())
        .args(["install", "path:.#vm"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(env.run(&["install", &env.flake("ct")]).status.success());
    env.set_version("3");
    let out = env
        .cmd()
        .current_dir("/")
        .args(["upgrade", "--all"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.generations("vm"), vec![1, 2]);
    assert_eq!(env.generations("ct"), vec![1, 2]);
}

#[test]
fn upgrade_all_evaluates_and_builds_each_flake_once_and_survives_a_broken_guest() {
    need_nix!();
    let env = TestEnv::new();
    for guest in ["vm", "ct", "default"] {
        assert!(env.run(&["install", &env.flake(guest)]).status.success());
    }
    env.set_version("2");
    // Count the `nix` processes through a wrapper that then runs the real one.
    let wrapper = env.path("nix-wrapper");
    std::fs::create_dir_all(&wrapper).unwrap();
    let real = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v nix"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    std::fs::write(
        wrapper.join("nix"),
        format!(
            "#!/bin/sh\necho \"$1\" >> {}/calls\nexec {} \"$@\"\n",
            wrapper.display(),
            real.trim()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        wrapper.join("nix"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let path = format!("{}:{}", wrapper.display(), std::env::var("PATH").unwrap());
    let out = env
        .cmd()
        .env("PATH", &path)
        .args(["upgrade", "--all"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let calls = std::fs::read_to_string(wrapper.join("calls")).unwrap();
    assert_eq!(
        calls,
        "eval
build
",
        "one evaluation and one `nix build` for the three guests of one flake"
    );
    assert_eq!(env.generations("vm"), vec![1, 2]);
    // One guest breaks: the others still upgrade, and the exit says so.
    let flake = env.flake_dir().join("flake.nix");
    let text = std::fs::read_to_string(&flake).unwrap();
    std::fs::write(
        &flake,
        text.replace(
            r#"ct = guest { name = "ct"; guestType = "lxc"; };"#,
            r#"ct = guest { name = "ct"; guestType = "lxc"; extra = "exit 1"; };"#,
        ),
    )
    .unwrap();
    env.set_version("3");
    let out = env.run(&["upgrade", "--all"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("1 of 3 guests failed to upgrade"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.generations("vm"), vec![1, 2, 3]);
    assert_eq!(env.generations("default"), vec![1, 2, 3]);
    assert_eq!(env.generations("ct"), vec![1, 2]);
}

#[test]
fn rollback_to_previous_and_to_a_given_generation() {
    need_nix!();
    let env = TestEnv::new();
    let mut outputs = Vec::new();
    for v in ["1", "2", "3"] {
        env.set_version(v);
        assert!(env
            .run(&["install", "-f", &env.flake("vm")])
            .status
            .success());
        outputs.push(env.current_output("vm"));
    }
    assert_eq!(env.generations("vm"), vec![1, 2, 3]);

    let out = env.run(&["rollback", "vm"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.current_output("vm"), outputs[1]);

    assert!(env.run(&["rollback", "vm", "--to", "1"]).status.success());
    assert_eq!(env.current_output("vm"), outputs[0]);
    let out = env.run(&["rollback", "vm"]);
    assert_one_line_error(&out);
    assert!(stderr(&out).contains("no generation before"));

    assert!(env.run(&["rollback", "vm", "--to", "3"]).status.success());
    assert_eq!(env.current_output("vm"), outputs[2]);
    let out = env.run(&["rollback", "vm", "--to", "9"]);
    assert_one_line_error(&out);
    assert!(stderr(&out).contains("no generation 9"));

    // The recorded flake reference survives rollbacks.
    assert!(env.run(&["rollback", "vm", "--to", "1"]).status.success());
    let out = env.run(&["upgrade", "vm"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.current_output("vm"), outputs[2]);
}

#[test]
fn remove_deletes_links_so_gc_can_reclaim() {
    need_nix!();
    let env = TestEnv::new();
    assert!(env.run(&["install", &env.flake("vm")]).status.success());
    env.set_version("2");
    assert!(env.run(&["upgrade", "vm"]).status.success());
    let output = env.current_output("vm");

    let out = env.run(&["remove", "vm"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.visible_state(), Vec::<String>::new());
    assert_one_line_error(&env.run(&["remove", "vm"]));

    // Nothing roots the output any more: the collector deletes it.
    let gc = std::process::Command::new("nix-store")
        .envs(env.nix_env())
        .args(["--gc"])
        .output()
        .unwrap();
    assert!(gc.status.success(), "{}", stderr(&gc));
    assert!(
        !output.exists(),
        "{} survived garbage collection",
        output.display()
    );
}

#[test]
fn list_and_generations_in_text_and_json() {
    need_nix!();
    let env = TestEnv::new();
    assert!(env.run(&["install", &env.flake("vm")]).status.success());
    assert!(env.run(&["install", &env.flake("ct")]).status.success());
    env.set_version("2");
    assert!(env.run(&["upgrade", "vm"]).status.success());

    let out = stdout(&env.run(&["list"]));
    let vm_line = out.lines().find(|l| l.starts_with("vm ")).unwrap();
    assert!(
        vm_line.contains("imperative") && vm_line.contains(" 2 ") && vm_line.contains("qemu"),
        "{vm_line}"
    );
    assert!(out
        .lines()
        .any(|l| l.starts_with("ct ") && l.contains("lxc")));

    let json: serde_json::Value =
        serde_json::from_slice(&env.run(&["list", "--json"]).stdout).unwrap();
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["name"], "vm");
    assert_eq!(rows[1]["generation"], 2);
    assert_eq!(rows[1]["guestType"], "qemu");
    assert_eq!(rows[1]["kind"], "imperative");
    assert_eq!(
        rows[1]["storePath"],
        env.current_output("vm").display().to_string()
    );

    let out = stdout(&env.run(&["generations", "vm"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[1].contains("(current)") && !lines[0].contains("(current)"));
    let gens: serde_json::Value =
        serde_json::from_slice(&env.run(&["generations", "vm", "--json"]).stdout).unwrap();
    assert_eq!(gens[0]["generation"], 1);
    assert_eq!(gens[0]["current"], false);
    assert_eq!(gens[1]["current"], true);
    assert_eq!(
        gens[1]["storePath"],
        env.current_output("vm").display().to_string()
    );
    assert!(gens[1]["created"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn bad_names_are_refused_before_anything_runs() {
    need_nix!();
    let env = TestEnv::new();
    let long = "a".repeat(65);
    let bad = [
        "a/b",
        "..",
        "x..y",
        "-rf",
        ".hidden",
        "a b",
        "tab\there",
        "bell\u{7}",
        "",
        &long,
        "vm-1-link",
    ];
    for name in bad {
        // The broken attribute would fail loudly if a build were attempted.
        let out = env.run(&["install", &format!("--name={name}"), &env.flake("broken")]);
        assert_one_line_error(&out);
        assert!(
            stderr(&out).contains("invalid guest name"),
            "{name:?}: {}",
            stderr(&out)
        );
        assert!(
            !stderr(&out).contains("deliberate build failure"),
            "{name:?} reached the build"
        );
        for cmd in [
            &["remove", "--", name][..],
            &["rollback", "--", name],
            &["create", "--", name],
            &["generations", "--", name],
        ] {
            let out = env.run(cmd);
            assert_one_line_error(&out);
            assert!(stderr(&out).contains("invalid guest name"), "{cmd:?}");
        }
        // `upgrade -- …` passes what follows to Nix; a name that looks
        // like an option is refused as one.
        let out = env.run(&["upgrade", name]);
        assert!(!out.status.success(), "upgrade {name:?}");
        if !name.starts_with('-') {
            assert!(
                stderr(&out).contains("invalid guest name"),
                "upgrade {name:?}"
            );
        }
    }
    assert_eq!(env.visible_state(), Vec::<String>::new());
}

#[test]
fn foreign_files_are_left_alone() {
    need_nix!();
    let env = TestEnv::new();
    std::fs::create_dir_all(env.guests_dir()).unwrap();
    std::fs::write(env.link("vm"), "precious").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", env.link("ct")).unwrap();

    for args in [
        vec!["install".to_string(), env.flake("vm")],
        vec!["install".into(), env.flake("ct")],
    ] {
        let out = env.cmd().args(&args).output().unwrap();
        assert_one_line_error(&out);
        assert!(
            stderr(&out).contains("refusing to touch it"),
            "{}",
            stderr(&out)
        );
    }
    assert_one_line_error(&env.run(&["remove", "vm"]));
    assert_eq!(std::fs::read_to_string(env.link("vm")).unwrap(), "precious");
    assert_eq!(
        std::fs::read_link(env.link("ct")).unwrap().to_str(),
        Some("/etc/hostname")
    );
    assert!(!env.profile("vm").exists());
    let listed: serde_json::Value =
        serde_json::from_slice(&env.run(&["list", "--json"]).stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 0);
}

#[test]
fn declarative_guests_are_listed_but_never_changed() {
    need_nix!();
    let env = TestEnv::new();
    // Build a guest output the way the host module would, outside any profile.
    let out = std::process::Command::new("nix")
        .envs(env.nix_env())
        .args([
            "build",
            "--json",
            "--no-link",
            &format!(
                "{}.config.system.build.miniguest",
                env.flake("nixosConfigurations.ct")
            ),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let built: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let path = built[0]["outputs"]["out"].as_str().unwrap().to_owned();
    std::fs::create_dir_all(env.guests_dir()).unwrap();
    std::os::unix::fs::symlink(&path, env.link("decl")).unwrap();

    let listed: serde_json::Value =
        serde_json::from_slice(&env.run(&["list", "--json"]).stdout).unwrap();
    assert_eq!(listed[0]["name"], "decl");
    assert_eq!(listed[0]["kind"], "declarative");
    assert_eq!(listed[0]["guestType"], "lxc");

    for args in [
        vec![
            "install".to_string(),
            "-n".into(),
            "decl".into(),
            env.flake("vm"),
        ],
        vec!["remove".into(), "decl".into()],
        vec!["rollback".into(), "decl".into()],
        vec!["upgrade".into(), "decl".into()],
    ] {
        let out = env.cmd().args(&args).output().unwrap();
        assert_one_line_error(&out);
        assert!(
            stderr(&out).contains("declared in the host configuration"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert_eq!(
        std::fs::read_link(env.link("decl")).unwrap().to_str(),
        Some(path.as_str())
    );
}

#[test]
fn concurrent_installs_of_one_guest_are_serialised() {
    need_nix!();
    let env = TestEnv::new();
    let children: Vec<_> = (0..4)
        .map(|_| {
            env.std_cmd()
                .args(["install", "--force", &env.flake("vm")])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    // Same output every time: one generation, a consistent profile.
    assert_eq!(env.generations("vm"), vec![1]);
    assert!(env.link("vm").join("miniguest.json").is_file());
    let origin = env.profiles_dir().join(".miniguest/vm.json");
    let recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(origin).unwrap()).unwrap();
    assert!(recorded["attribute"].as_str().unwrap().contains("vm"));

    // Without --force exactly one of two racing installs of a new guest wins.
    let racers: Vec<_> = (0..2)
        .map(|_| {
            env.std_cmd()
                .args(["install", "-n", "race", &env.flake("ct")])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let wins = racers
        .into_iter()
        .map(|c| c.wait_with_output().unwrap().status.success())
        .filter(|ok| *ok)
        .count();
    assert_eq!(wins, 1);
    assert_eq!(env.generations("race"), vec![1]);
}

#[test]
fn a_build_killed_midway_leaves_a_usable_state() {
    need_nix!();
    use std::os::unix::process::CommandExt;
    let env = TestEnv::new();
    assert!(env
        .run(&["install", "-n", "victim", &env.flake("vm")])
        .status
        .success());
    let before = env.current_output("victim");

    let child = env
        .std_cmd()
        .args(["install", "--force", "-n", "victim", &env.flake("slow")])
        .process_group(0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pgid = child.id() as i32;
    // Wait until the build is running (its lock is held and Nix has started).
    std::thread::sleep(std::time::Duration::from_secs(2));
    let killed = std::process::Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{pgid}")])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut child = child;
    let _ = child.wait();

    assert_eq!(env.generations("victim"), vec![1]);
    assert_eq!(env.current_output("victim"), before);
    // The next commands accept this state.
    let out = env.run(&["list", "--json"]);
    assert!(out.status.success());
    env.set_version("2");
    let out = env.run(&["upgrade", "victim"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.generations("victim"), vec![1, 2]);
}

#[test]
fn template_writes_the_flake_and_refuses_to_overwrite() {
    let env = TestEnv::new();
    let dir = env.path("tpl");
    let out = env.run(&["template", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let template_root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template");
    let mut count = 0;
    for entry in walk(&template_root) {
        let rel = entry.strip_prefix(&template_root).unwrap();
        assert_eq!(
            std::fs::read(&entry).unwrap(),
            std::fs::read(dir.join(rel)).unwrap(),
            "{rel:?}"
        );
        count += 1;
    }
    assert!(count >= 3);
    assert_eq!(walk(&dir).len(), count);

    std::fs::write(dir.join("flake.nix"), "mine").unwrap();
    let out = env.run(&["template", dir.to_str().unwrap()]);
    assert_one_line_error(&out);
    assert!(stderr(&out).contains("refusing to overwrite"));
    assert_eq!(
        std::fs::read_to_string(dir.join("flake.nix")).unwrap(),
        "mine"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn completions_and_man_page() {
    let env = TestEnv::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = env.run(&["completions", shell]);
        assert!(out.status.success());
        assert!(stdout(&out).contains("install"), "{shell}");
    }
    let man = stdout(&env.run(&["manpage"]));
    assert!(man.contains(".TH miniguest"));
}

/// What users of the original Miniguest type: `--hypervisor`, and the
/// configuration itself as the installable.
#[test]
fn the_original_spellings_work() {
    need_nix!();
    let env = TestEnv::new();
    let out = env.run(&["install", &env.flake("nixosConfigurations.vm")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.generations("vm"), vec![1]);
    let out = env.run(&["create", "--hypervisor", "qemu", "vm"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("qemu-system-"), "{}", stdout(&out));
}

/// A command that fails prints nothing of its output first.
#[test]
fn create_validates_before_printing() {
    need_nix!();
    let env = TestEnv::new();
    assert!(env.run(&["install", &env.flake("ct")]).status.success());
    for backend in ["libvirt", "qemu"] {
        let out = env.run(&["create", "-t", backend, "ct"]);
        assert_one_line_error(&out);
        assert_eq!(stdout(&out), "", "{backend} printed before failing");
    }
}

/// Nix's own flags reach Nix, and the ones that change what is built
/// (`--override-input`, `--impure`) are recorded, so upgrades build the
/// same thing.
#[test]
fn nix_flags_pass_through_and_overrides_are_recorded() {
    need_nix!();
    let env = TestEnv::new();
    let flake = env.path("withinput");
    for (dir, word) in [("dep1", "one"), ("dep2", "two")] {
        let d = env.path(dir);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("flake.nix"),
            format!("{{ outputs = _: {{ word = \"{word}\"; }}; }}"),
        )
        .unwrap();
    }
    std::fs::create_dir_all(&flake).unwrap();
    std::fs::write(
        flake.join("flake.nix"),
        format!(
            r#"{{
  inputs.dep.url = "path:{}";
  outputs = {{ self, dep }}: {{
    nixosConfigurations.vm.config.system.build.miniguest = derivation {{
      name = "miniguest-vm";
      system = "x86_64-linux";
      builder = "/bin/sh";
      args = [ "-c" "export PATH=/usr/bin:/bin; mkdir -p $out/boot; echo '#!/bin/sh' > $out/boot/init; echo k > $out/kernel; echo i > $out/initrd; echo '{{\"version\":1,\"guestType\":\"qemu\"}}' > $out/miniguest.json; echo ${{dep.word}} > $out/boot/word" ];
    }};
  }};
}}"#,
            env.path("dep1").display()
        ),
    )
    .unwrap();
    let source = format!("path:{}#vm", flake.display());
    let dep2 = format!("path:{}", env.path("dep2").display());
    let out = env.run(&[
        "install",
        "--override-input",
        "dep",
        &dep2,
        "-L",
        "--show-trace",
        "--option",
        "max-jobs",
        "2",
        &source,
        "--",
        "--keep-going",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let word = |env: &TestEnv| {
        std::fs::read_to_string(env.current_output("vm").join("boot/word")).unwrap()
    };
    assert_eq!(word(&env), "two\n");
    let record = std::fs::read_to_string(env.profiles_dir().join(".miniguest/vm.json")).unwrap();
    assert!(record.contains("overrideInputs"), "{record}");
    // The upgrade repeats the override, though the flake's lock says dep1.
    let out = env.run(&["upgrade", "vm", "--offline"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(word(&env), "two\n");
    // A later install --force without it records that.
    let out = env.run(&["install", "--force", &source]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(word(&env), "one\n");
    let out = env.run(&["upgrade", "vm"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(word(&env), "one\n");
}

/// A guest the original Miniguest installed: `nix profile install
/// --profile PROFILES/NAME FLAKE#ATTR`, linked from GUESTS_DIR/NAME. It is
/// listed, upgraded in place from the flake its manifest names, and its
/// first generation stays available for rollback.
#[test]
fn guests_installed_by_the_original_upgrade_in_place() {
    need_nix!();
    let env = TestEnv::new();
    std::fs::create_dir_all(env.profiles_dir()).unwrap();
    std::fs::create_dir_all(env.guests_dir()).unwrap();
    let made = std::process::Command::new("nix")
        .envs(env.nix_env())
        .args(["profile", "install", "--profile"])
        .arg(env.profile("vm"))
        .arg(env.flake("nixosConfigurations.vm.config.system.build.miniguest"))
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", stderr(&made));
    std::os::unix::fs::symlink(env.profile("vm"), env.link("vm")).unwrap();
    assert!(env.profile("vm").join("manifest.json").is_file());

    let out = env.run(&["list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["name"], "vm");
    assert_eq!(rows[0]["guestType"], "qemu", "{rows}");

    env.set_version("2");
    let out = env.run(&["upgrade", "vm"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.generations("vm"), vec![1, 2]);
    assert!(!env.profile("vm").join("manifest.json").exists());
    let out = env.run(&["rollback", "vm"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        env.profile("vm").join("manifest.json").is_file(),
        "generation 1 is the original's"
    );
}

/// A VM that asks for no particular network gets one that works without
/// host setup, and `create` says which; `--network none` still means none.
#[test]
fn vms_get_a_working_network_by_default() {
    need_nix!();
    let env = TestEnv::new();
    assert!(env.run(&["install", &env.flake("vm")]).status.success());
    let out = env.run(&["create", "-t", "qemu", "vm"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("-netdev user,id=net0 -device virtio-net-pci,netdev=net0"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("guest vm gets network: user-mode"),
        "{}",
        stderr(&out)
    );
    let out = env.run(&["create", "-t", "qemu", "vm", "--network", "none"]);
    assert!(!stdout(&out).contains("-netdev"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("guest vm gets network: none"),
        "{}",
        stderr(&out)
    );
}

/// The printed domain XML defines the same domain every time: NixVirt-style
/// users redefine from it at every switch. libvirt's test driver (no
/// daemon) defines it twice in one connection.
#[test]
fn the_printed_domain_xml_can_be_defined_again() {
    need_nix!();
    let env = TestEnv::new();
    assert!(env.run(&["install", &env.flake("vm")]).status.success());
    let first = env.run(&["create", "vm", "--xml", "--network", "none"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let again = env.run(&["create", "vm", "--xml", "--network", "none"]);
    assert_eq!(
        stdout(&first),
        stdout(&again),
        "the XML changed between runs"
    );
    assert!(stdout(&first).contains("<uuid>"), "{}", stdout(&first));
    let xml = env.path("vm.xml");
    std::fs::write(&xml, stdout(&first)).unwrap();
    if !common::standin::which("virsh") {
        assert!(
            std::env::var_os("MINIGUEST_REQUIRE_E2E").is_none(),
            "virsh is missing"
        );
        eprintln!("skipped the definitions: virsh is not installed");
        return;
    }
    let file = xml.display();
    let out = std::process::Command::new("virsh")
        .args(["-c", "test:///default"])
        .arg(format!("define {file}; define {file}; domuuid vm"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A libvirt that cannot be reached is one line of Miniguest's, not
/// libvirt's own printout beside it.
#[test]
fn libvirt_errors_are_reported_once() {
    need_nix!();
    let env = TestEnv::new();
    assert!(env.run(&["install", &env.flake("vm")]).status.success());
    let uri = format!("qemu:///system?socket={}", env.path("no-socket").display());
    let out = env.run(&[
        "create",
        "vm",
        "--define",
        "--network",
        "none",
        "--connect",
        &uri,
    ]);
    assert_one_line_error(&out);
    assert!(
        !stderr(&out).lines().any(|l| l.starts_with("libvirt:")),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("cannot connect"), "{}", stderr(&out));
}

/// Shell completion offers live values, as bash asks for them: installed
/// guests' names, the backends, and a guest's generations.
#[test]
fn bash_completion_offers_guests_backends_and_generations() {
    need_nix!();
    let env = TestEnv::new();
    for args in [
        &["install", &env.flake("vm")][..],
        &["install", &env.flake("ct")],
    ] {
        assert!(env.run(args).status.success());
    }
    env.set_version("2");
    assert!(env.run(&["upgrade", "vm"]).status.success());
    let bin = assert_cmd::cargo::cargo_bin("miniguest");
    let script = format!(
        r#"source <(COMPLETE=bash {bin})
c() {{ COMP_WORDS=("$@"); COMP_CWORD=$(($#-1)); COMP_LINE="$*"; COMP_POINT=${{#COMP_LINE}}; COMPREPLY=()
  _clap_complete_miniguest miniguest "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
  printf '%s\n' "${{COMPREPLY[@]}}" | grep -v '^-' | sort | tr '\n' ' '; echo; }}
c miniguest start ""
c miniguest create -t ""
c miniguest rollback vm --to ""
c miniguest rollback vm --to 2"#,
        bin = bin.display()
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &script])
        .envs(env.nix_env())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(|l| l.trim().to_owned()).collect();
    assert_eq!(
        lines,
        ["ct vm", "libvirt lxc nspawn qemu", "1 2", "2"],
        "{}",
        stdout(&out)
    );
}

/// A host that ssh would read as an option, or a shell as more words, is
/// refused before ssh runs; so are several hosts for a command that acts
/// on one, and `run` on another host. Nothing is installed here.
#[test]
fn bad_hosts_are_refused_in_one_line_before_ssh_runs() {
    let env = TestEnv::new();
    for host in [
        "-oProxyCommand=touch /tmp/pwned",
        "a b",
        "host;reboot",
        "@x",
    ] {
        let out = env.run(&[&format!("--host={host}"), "status"]);
        assert_one_line_error(&out);
        assert!(stderr(&out).contains("--host"), "{}", stderr(&out));
    }
    let out = env.run(&["--host", "a", "--host", "b", "start", "web"]);
    assert_one_line_error(&out);
    assert!(
        stderr(&out).contains("only status, list and upgrade"),
        "{}",
        stderr(&out)
    );
    let out = env.run(&["--host", "a", "run", "web"]);
    assert_one_line_error(&out);
    assert!(stderr(&out).contains("--host: run"), "{}", stderr(&out));
    let file = env.path("hosts");
    std::fs::write(&file, "root@good\n-bad\n").unwrap();
    let out = env.run(&["--hosts-file", file.to_str().unwrap(), "list"]);
    assert_one_line_error(&out);
    assert!(stderr(&out).contains("\"-bad\""), "{}", stderr(&out));
    assert!(env.visible_state().is_empty(), "{:?}", env.visible_state());
}

/// A hypervisor's hook runs here whatever MINIGUEST_HOST the user left in
/// its environment.
#[test]
fn the_hook_ignores_miniguest_host() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .env("MINIGUEST_HOST", "-oProxyCommand=x")
        .args(["hook", "stopped", "web"])
        .output()
        .unwrap();
    assert!(!stderr(&out).contains("--host"), "{}", stderr(&out));
}
