//! The guest and host modules evaluated as NixOS would evaluate them: with
//! nixpkgs' module system and declarations of the NixOS options they touch
//! (nix/model, see docs/nixos.md). Each test is one way a real user's first
//! steps used to break.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::standin::repo_root;

/// nixpkgs' lib: vendored beside the project (`../shared/vendor`), or
/// wherever MINIGUEST_NIXPKGS_LIB says.
fn nixpkgs_lib() -> Option<PathBuf> {
    let dir = std::env::var_os("MINIGUEST_NIXPKGS_LIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/vendor/nixpkgs-lib"));
    if dir.join("lib/default.nix").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("MINIGUEST_REQUIRE_NIX").is_none(),
        "nixpkgs' lib is not at {} (set MINIGUEST_NIXPKGS_LIB)",
        dir.display()
    );
    eprintln!("skipped: nixpkgs' lib is not at {}", dir.display());
    None
}

macro_rules! need_model {
    () => {
        match (common::nix_available(), nixpkgs_lib()) {
            (true, Some(lib)) => lib,
            _ => return,
        }
    };
}

/// Evaluates EXPR with the model in scope; Ok(JSON) or Err(Nix's stderr).
fn eval(lib: &std::path::Path, expr: &str) -> Result<serde_json::Value, String> {
    let out = eval_raw(lib, expr);
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Like `eval`, and fails on any evaluation warning: code users copy (the
/// README's, the template's) must evaluate as quietly as NixOS allows.
fn eval_quiet(lib: &std::path::Path, expr: &str) -> Result<serde_json::Value, String> {
    let out = eval_raw(lib, expr);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if let Some(warning) = stderr.lines().find(|l| l.contains("warning")) {
        return Err(format!("evaluation warned: {warning}"));
    }
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(stderr)
    }
}

fn eval_raw(lib: &std::path::Path, expr: &str) -> std::process::Output {
    let env = common::TestEnv::new();
    Command::new("nix")
        .envs(env.nix_env())
        .args(["eval", "--json", "--impure", "--expr"])
        .arg(format!("{} {expr}", preamble(lib)))
        .output()
        .unwrap()
}

/// The bindings every expression is evaluated with.
fn preamble(lib: &std::path::Path) -> String {
    let root = repo_root();
    format!(
        r#"
        let
          lib = import {lib}/lib;
          model = import {root}/nix/model {{ inherit lib; }};
          guestModule = {root}/nix/modules/guest;
          hostModule = {root}/nix/modules/host;
          contract = import {root}/nix/lib/contract.nix;
          flake = let f = import {root}/flake.nix; self = f.outputs {{ inherit self; nixpkgs = model.nixpkgs; }} // {{ outPath = {root}; }}; in self;
          eval = modules: model.nixosSystem {{ inherit modules; }};
          root = {{ fileSystems."/" = {{ device = "tmpfs"; fsType = "tmpfs"; }}; }};
          vm = extra: lib.recursiveUpdate (root // {{ boot.miniguest.enable = true; }}) extra;
          guest = extra: eval [ guestModule (vm extra) ];
          # What building would force: the toplevel and the guest output.
          built = c: c.config.system.build.miniguest.drvPath;
          fsOptions = c: mp: c.config.fileSystems.${{mp}}.options;
        in
        "#,
        lib = lib.display(),
        root = root.display(),
    )
}

fn fails_with(result: Result<serde_json::Value, String>, want: &str) {
    match result {
        Ok(v) => panic!("evaluated to {v}, expected an error with {want:?}"),
        Err(e) => assert!(e.contains(want), "want {want:?} in:\n{e}"),
    }
}

#[test]
fn the_guest_module_imported_twice_is_one_module() {
    let lib = need_model!();
    // As a path, as the flake's nixosModules.guest, and through the host.
    let r = eval(
        &lib,
        r#"built (eval [ guestModule flake.nixosModules.guest (import guestModule) (vm { }) ])"#,
    );
    assert!(r.is_ok(), "{r:?}");
    let r = eval(
        &lib,
        r#"(eval [ flake.nixosModules.host { miniguests.g.configuration = { imports = [ flake.nixosModules.guest ]; } // root; } ]).config.environment.etc."miniguests/g".source.drvPath"#,
    );
    assert!(r.is_ok(), "{r:?}");
}

#[test]
fn the_host_module_works_with_read_only_nixpkgs() {
    let lib = need_model!();
    // As runNixOSTest evaluates nodes (node.pkgs: misc/nixpkgs/read-only.nix).
    let r = eval(
        &lib,
        r#"(model.nixosSystem { readOnlyPkgs = model.pkgsFor "x86_64-linux"; modules = [ root flake.nixosModules.host { virtualisation.libvirtd.enable = true; miniguests.g.configuration = root; } ]; }).config.system.build.toplevel.drvPath"#,
    );
    assert!(r.is_ok(), "{r:?}");
}

#[test]
fn the_flake_checks_evaluate() {
    let lib = need_model!();
    // What `nix flake check --no-build` evaluates, with the model as nixpkgs.
    let r = eval(
        &lib,
        r#"lib.mapAttrs (_: c: c.drvPath) flake.checks.x86_64-linux"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let checks = r.as_object().unwrap();
    assert!(
        checks.contains_key("declarative") && checks.contains_key("imperative"),
        "{r}"
    );
}

/// `nix-instantiate --eval` evaluates without writing to the store: a path
/// interpolated into a string (`"${pkgs.path}/nixos/…"`) is then a store
/// path that does not exist, and importing it fails. With a nixpkgs
/// checkout as `pkgs.path` the same interpolation would copy all of it
/// into the store. The checks import nixpkgs' files by path instead.
#[test]
fn the_flake_checks_evaluate_read_only_without_copying_nixpkgs() {
    let lib = need_model!();
    let env = common::TestEnv::new();
    let out = Command::new("nix-instantiate")
        .envs(env.nix_env())
        .args(["--eval", "--strict", "--json", "--expr"])
        .arg(format!(
            "{} lib.mapAttrs (_: c: c.drvPath) flake.checks.x86_64-linux",
            preamble(&lib)
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let checks: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(checks.get("imperative").is_some(), "{checks}");
}

/// VM guests run the QEMU guest agent and say so; the manifest carries the
/// readiness command and the system a switch applies; containers need no
/// agent. A declared guest's restart waits when told.
#[test]
fn day_three_reaches_the_manifest() {
    let lib = need_model!();
    let r = eval(
        &lib,
        r#"let
             vmc = guest { };
             ct = eval [ guestModule { boot.miniguest = { enable = true; guestType = "lxc"; }; } ];
           in {
             vmAgent = vmc.config.services.qemuGuest.enable;
             vmModules = vmc.config.boot.initrd.kernelModules;
             ctAgent = ct.config.services.qemuGuest.enable;
             ready = (contract.mkManifest (vmc.config.boot.miniguest // { agent = true; })).readyCommand;
           }"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r["vmAgent"], true, "{r}");
    assert!(
        r["vmModules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "virtio_console"),
        "{r}"
    );
    assert_eq!(r["ctAgent"], false, "{r}");
    assert_eq!(
        r["ready"],
        serde_json::json!(["systemctl", "is-system-running", "--wait"])
    );
    let unit = eval(
        &lib,
        r#"(eval [ root hostModule { miniguests.web = { configuration = root; waitReady = 90; }; } ]).config.systemd.services."miniguest-define-web".script"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        unit,
        "miniguest create -t libvirt --define --connect qemu:///system web\nminiguest restart --if-needed '--wait=90' web"
    );
}

/// Every option and sub-option the modules declare says what it is for, as
/// NixOS's manual would show it.
#[test]
fn every_option_has_a_description() {
    let lib = need_model!();
    let r = eval(
        &lib,
        r#"let
             c = eval [ root guestModule hostModule ];
             docs = o: lib.optionAttrSetToDocList o;
             undescribed = o: map (d: d.name) (lib.filter (d: (d.description or null) == null || d.description == "") (docs o));
           in {
             guest = undescribed c.options.boot.miniguest;
             host = undescribed c.options.miniguests ++ undescribed c.options.programs.miniguest;
             count = builtins.length (docs c.options.boot.miniguest ++ docs c.options.miniguests);
           }"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r["guest"], serde_json::json!([]), "{r}");
    assert_eq!(r["host"], serde_json::json!([]), "{r}");
    assert!(r["count"].as_u64().unwrap() > 20, "{r}");
}

#[test]
fn a_writable_virtiofs_share_evaluates_and_only_the_store_is_cached_loosely() {
    let lib = need_model!();
    let r = eval(
        &lib,
        r#"let c = guest { boot.miniguest.qemu.fsType = "virtiofs"; boot.miniguest.shares.data = { source = "/srv/data"; mountPoint = "/data"; }; }; in [ (built c) (fsOptions c "/data") ]"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r[1],
        serde_json::json!(["rw", "x-systemd.requires=modprobe@virtiofs.service"])
    );
    let r = eval(
        &lib,
        r#"let c = guest { boot.miniguest.shares.data = { source = "/srv/data"; mountPoint = "/data"; }; }; in map (fsOptions c) [ "/nix/store" "/boot" "/data" ]"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let has_loose = |i: usize| r[i].as_array().unwrap().iter().any(|o| o == "cache=loose");
    assert!(has_loose(0), "{r}");
    assert!(!has_loose(1) && !has_loose(2), "{r}");
}

#[test]
fn volume_names_fit_a_virtio_serial_on_both_sides() {
    let lib = need_model!();
    fails_with(
        eval(
            &lib,
            r#"built (guest { boot.miniguest.volumes.abcdefghijklmnopqrstu = { mountPoint = "/x"; }; })"#,
        ),
        "boot.miniguest.volumes.abcdefghijklmnopqrstu: a volume name is 1-20 characters",
    );
    assert!(eval(
        &lib,
        r#"built (guest { boot.miniguest.volumes.abcdefghijklmnopqrst = { mountPoint = "/x"; }; })"#
    )
    .is_ok());
    let limit = eval(&lib, "contract.limits.volumeName").unwrap();
    assert_eq!(limit, miniguest::contract::MAX_VOLUME_NAME);
    assert_eq!(
        eval(&lib, "contract.limits.shareTag").unwrap(),
        miniguest::contract::MAX_SHARE_TAG
    );
}

#[test]
fn the_console_matches_the_platform() {
    let lib = need_model!();
    let params = |system: &str| {
        eval(
            &lib,
            &format!(r#"(model.nixosSystem {{ system = "{system}"; modules = [ guestModule (vm {{ }}) ]; }}).config.boot.kernelParams"#),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    assert!(params("x86_64-linux")
        .as_array()
        .unwrap()
        .contains(&"console=ttyS0".into()));
    assert!(params("aarch64-linux")
        .as_array()
        .unwrap()
        .contains(&"console=ttyAMA0".into()));
    // nixpkgs.hostPlatform, the current way to say it, is honoured too.
    let r = eval(
        &lib,
        r#"(eval [ guestModule (vm { nixpkgs.hostPlatform = "aarch64-linux"; }) ]).config.boot.kernelParams"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        r.as_array().unwrap().contains(&"console=ttyAMA0".into()),
        "{r}"
    );
}

/// NixOS's own defaults reach a guest: its default kernel parameters, and
/// kernel module options that take a list or a set of booleans.
#[test]
fn nixos_defaults_and_module_sets_reach_the_guest() {
    let lib = need_model!();
    let r = eval(
        &lib,
        r#"let c = (eval [ guestModule (vm { boot.initrd.kernelModules = { extra_mod = true; unwanted = false; }; }) ]).config; in {
             params = c.boot.kernelParams;
             modules = c.boot.initrd.kernelModules;
           }"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let params = r["params"].as_array().unwrap();
    for p in ["loglevel=4", "root=fstab", "lsm=landlock,yama,bpf"] {
        assert!(params.contains(&p.into()), "{p}: {params:?}");
    }
    let modules = r["modules"].as_array().unwrap();
    assert!(modules.contains(&"extra_mod".into()), "{modules:?}");
    assert!(!modules.contains(&"unwanted".into()), "{modules:?}");
    assert!(modules.contains(&"9pnet_virtio".into()), "{modules:?}");
    // A dependency that names no unit is refused, as NixOS refuses it.
    fails_with(
        eval(
            &lib,
            r#"(eval [ guestModule (vm { systemd.services.x.after = [ "libvirtd" ]; }) ]).config.systemd.services.x.after"#,
        ),
        "systemd.services.x.after",
    );
}

#[test]
fn under_systemd_stage_1_shares_wait_for_their_module() {
    let lib = need_model!();
    for (fs, module) in [("9p", "9pnet_virtio"), ("virtiofs", "virtiofs")] {
        let r = eval(
            &lib,
            &format!(r#"let c = guest {{ boot.initrd.systemd.enable = true; boot.miniguest.qemu.fsType = "{fs}"; }}; in map (fsOptions c) [ "/nix/store" "/boot" ]"#),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for opts in r.as_array().unwrap() {
            assert!(
                opts.as_array()
                    .unwrap()
                    .contains(&format!("x-systemd.requires=modprobe@{module}.service").into()),
                "{fs}: {r}"
            );
        }
    }
}

#[test]
fn declared_guests_get_the_hosts_arguments_and_nixpkgs() {
    let lib = need_model!();
    // A guest module that takes `inputs`, and uses a package an overlay of
    // the host adds.
    let r = eval(
        &lib,
        r#"let host = model.nixosSystem {
             specialArgs.inputs.self.label = "from-host";
             modules = [ root hostModule {
               nixpkgs.overlays = [ (final: prev: { greeting = final.writeText "greeting" "hi"; }) ];
               miniguests.g.configuration = { inputs, pkgs, ... }: root // {
                 system.nixos.label = inputs.self.label;
                 environment.etc.greeting.source = pkgs.greeting;
               };
             } ];
           }; in host.config.environment.etc."miniguests/g".source.name"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r, "miniguest-g-from-host");
    // And a documented way to change them.
    fails_with(
        eval(
            &lib,
            r#"(model.nixosSystem { specialArgs.inputs.self.label = "x"; modules = [ root hostModule { miniguests.g = { specialArgs = { }; configuration = { inputs, ... }: root // { system.nixos.label = inputs.self.label; }; }; } ]; }).config.environment.etc."miniguests/g".source.drvPath"#,
        ),
        "inputs",
    );
    // The host's nixpkgs source (lib.nixosSystem sets it), for the guest's
    // NIX_PATH and registry; none where the host has none.
    let source = |host: &str| {
        eval(
            &lib,
            &format!(
                r#"(eval [ root hostModule {{ {host} miniguests.g.configuration = root; }} ]).config.programs.miniguest.declaredGuests.g.eval.config.nixpkgs.flake.source"#
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    assert_eq!(
        source(r#"nixpkgs.flake.source = "/nix/store/0000000000000000000000000000000a-source";"#),
        "/nix/store/0000000000000000000000000000000a-source"
    );
    assert_eq!(source(""), serde_json::Value::Null);
}

#[test]
fn declared_lxc_guests_get_a_root_id_range_or_a_message_naming_the_fix() {
    let lib = need_model!();
    let host = |extra: &str| {
        format!(
            r#"model.nixosSystem {{ modules = [ root hostModule {{ miniguests.box.configuration.boot.miniguest.guestType = "lxc"; }} {extra} ]; }}"#
        )
    };
    let r = eval(
        &lib,
        &format!("(({}).config.users.users.root.subUidRanges)", host("{ }")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r,
        serde_json::json!([{ "startUid": 1000000, "count": 65536 }])
    );
    let unit = eval(
        &lib,
        &format!(
            r#"(({}).config.systemd.services."miniguest-define-box".script)"#,
            host("{ }")
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        unit,
        "miniguest create -t lxc --define box\nminiguest restart --if-needed box"
    );
    // nspawn is a backend too, and its containers are mapped the same way.
    let nspawn = host(r#"{ miniguests.box.backend = "nspawn"; }"#);
    let r = eval(
        &lib,
        &format!(
            r#"let c = ({nspawn}).config; in [ c.systemd.services."miniguest-define-box".script c.users.users.root.subGidRanges ]"#
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r,
        serde_json::json!([
            "miniguest create -t nspawn --define --nspawn-dir /run/systemd/nspawn --unit-dir /run/systemd/system box\nsystemctl daemon-reload\nminiguest restart --if-needed box",
            [{ "startGid": 1000000, "count": 65536 }]
        ])
    );
    fails_with(
        eval(
            &lib,
            &format!(
                "({}).config.system.build.toplevel.drvPath",
                host(
                    r#"{ users.users.root.subUidRanges = lib.mkForce [ { startUid = 0; count = 65536; } ]; }"#
                )
            ),
        ),
        "give root one of 65536 ids that does not hold id 0, e.g. users.users.root.subUidRanges",
    );
}

#[test]
fn guest_names_follow_the_clis_policy() {
    let lib = need_model!();
    fails_with(
        eval(
            &lib,
            r#"(eval [ root hostModule { miniguests."web.1".configuration = root; } ]).config.system.build.toplevel.drvPath"#,
        ),
        "miniguests.web.1: a guest name is 1-63 letters, digits and '-'",
    );
    // Every name the host accepts, the CLI accepts, and so does NixOS's
    // networking.hostName.
    for name in ["web", "web-1", "a1b2"] {
        assert!(name.parse::<miniguest::guest::GuestName>().is_ok());
        let r = eval(
            &lib,
            &format!(
                r#"(eval [ root hostModule {{ miniguests."{name}".configuration = root; }} ]).config.environment.etc."miniguests/{name}".source.drvPath"#
            ),
        );
        assert!(r.is_ok(), "{name}: {r:?}");
    }
}

/// The same mistakes, refused at evaluation by the option and by the CLI
/// by the manifest field.
#[test]
fn the_contracts_rules_are_checked_at_evaluation() {
    let lib = need_model!();
    let cases = [
        (
            r#"boot.miniguest.shares.boot = { source = "/srv"; mountPoint = "/x"; };"#,
            "boot.miniguest.shares.boot: the tag boot is reserved",
        ),
        (
            r#"boot.miniguest.shares."a b" = { source = "/srv"; mountPoint = "/x"; };"#,
            "boot.miniguest.shares.a b: a share tag is 1-36 characters",
        ),
        (
            r#"boot.miniguest.shares.data = { source = "srv"; mountPoint = "/x"; };"#,
            "boot.miniguest.shares.data.source: \"srv\" must be an absolute host path",
        ),
        (
            r#"boot.miniguest.shares.data = { source = "/srv/../etc"; mountPoint = "/x"; };"#,
            "boot.miniguest.shares.data.source",
        ),
        (
            r#"boot.miniguest.volumes.v = { mountPoint = "/"; };"#,
            "boot.miniguest.volumes.v.mountPoint: \"/\" may not be /",
        ),
        (
            r#"boot.miniguest.shares.data = { source = "/srv"; mountPoint = "/"; };"#,
            "boot.miniguest.shares.data.mountPoint: \"/\" may not be /",
        ),
        (
            r#"boot.miniguest.volumes.v = { mountPoint = "/a/../b"; };"#,
            "boot.miniguest.volumes.v.mountPoint",
        ),
        (
            r#"boot.miniguest.volumes.d = { mountPoint = "/a"; }; boot.miniguest.shares.d = { source = "/srv"; mountPoint = "/b"; };"#,
            "boot.miniguest.volumes.d: boot.miniguest.shares.d has the same name",
        ),
        (
            r#"boot.miniguest.interfaces = [ { type = "bridge"; } ];"#,
            "boot.miniguest.interfaces.0.source: a bridge interface needs one",
        ),
        (
            r#"boot.miniguest.interfaces = [ { type = "user"; source = "br0"; } ];"#,
            "boot.miniguest.interfaces.0.source: a user interface takes no source",
        ),
        (
            r#"boot.miniguest.interfaces = [ { type = "bridge"; source = "br0"; mac = "nope"; } ];"#,
            "boot.miniguest.interfaces.0.mac",
        ),
        (
            r#"boot.miniguest.volumes.v = { mountPoint = "/v"; sizeMiB = 17592186044416; };"#,
            "boot.miniguest.volumes.v.sizeMiB",
        ),
        (
            r#"boot.miniguest.credentials = [ "/etc/shadow" ];"#,
            "boot.miniguest.credentials.0",
        ),
        (
            r#"boot.miniguest.credentials = [ "a" "a" ];"#,
            "boot.miniguest.credentials: a name is listed twice",
        ),
    ];
    for (config, want) in cases {
        fails_with(eval(&lib, &format!("built (guest {{ {config} }})")), want);
        // The manifest the same configuration would give, as the CLI reads it.
        let manifest = eval(
            &lib,
            &format!(
                "builtins.toJSON (contract.mkManifest ((guest {{ {config} }}).config.boot.miniguest // {{ kernelParams = [ ]; }}))"
            ),
        );
        if let Ok(json) = manifest {
            let refused = miniguest::contract::Manifest::parse(json.as_str().unwrap());
            assert!(
                refused.is_err(),
                "the CLI accepted what the module refuses: {config}"
            );
        }
    }
}

#[test]
fn the_cli_is_installed_and_each_guest_evaluated_once() {
    let lib = need_model!();
    let r = eval(
        &lib,
        r#"map (p: p.name) (eval [ root hostModule ]).config.environment.systemPackages"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r, serde_json::json!(["miniguest-0.2.0"]));
    // Three guests, one of them LXC, the host's toplevel built: the host and
    // each guest are evaluated exactly once.
    let out = eval_raw(
        &lib,
        r#"(eval [ root hostModule { virtualisation.libvirtd.enable = true; virtualisation.lxc.enable = true; miniguests = { a.configuration = root; b.configuration = root; c.configuration.boot.miniguest.guestType = "lxc"; }; } ]).config.system.build.toplevel.drvPath"#,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stderr
            .matches("nixos-model: evaluating a configuration")
            .count(),
        4,
        "{stderr}"
    );
}

#[test]
fn the_package_cross_compiles_without_running_what_it_built() {
    let lib = need_model!();
    let post_install = |can_execute: bool| {
        eval(
            &lib,
            &format!(
                r#"let pkgs = model.pkgsFor "x86_64-linux"; in (pkgs.callPackage {}/nix/package.nix {{ stdenv = pkgs.stdenv // {{ buildPlatform = pkgs.stdenv.buildPlatform // {{ canExecute = _: {can_execute}; }}; }}; }}).postInstall"#,
                repo_root().display()
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    assert!(post_install(true)
        .as_str()
        .unwrap()
        .contains("$out/bin/miniguest manpage"));
    // Only what needs nothing run: the hook script copied in.
    let cross = post_install(false);
    assert!(
        !cross.as_str().unwrap().contains("$out/bin/miniguest"),
        "{cross}"
    );
    assert!(
        cross
            .as_str()
            .unwrap()
            .contains("libexec/miniguest/libvirt-qemu-hook"),
        "{cross}"
    );
}

/// The README's examples, evaluated as they are written there.
#[test]
fn the_readmes_examples_evaluate_verbatim() {
    let lib = need_model!();
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let blocks: Vec<&str> = readme
        .split("```nix\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    let guest_example = blocks
        .iter()
        .find(|b| b.contains("boot.miniguest = {"))
        .expect("the README shows a guest");
    let r = eval_quiet(
        &lib,
        &format!("built (eval [ guestModule ({guest_example}) ])"),
    );
    assert!(r.is_ok(), "{guest_example}\n{r:?}");
    let host_example = blocks
        .iter()
        .find(|b| b.contains("miniguests."))
        .expect("the README shows declared guests");
    let r = eval_quiet(
        &lib,
        &format!(
            r#"let miniguest = flake; host = model.nixosSystem {{ specialArgs.inputs = {{ }}; modules = [ root {{ system.stateVersion = "26.05"; }} ({host_example}) ]; }}; in lib.mapAttrs (_: e: e.source.drvPath) (lib.filterAttrs (n: _: lib.hasPrefix "miniguests/" n) host.config.environment.etc)"#
        ),
    );
    assert!(r.is_ok(), "{host_example}\n{r:?}");
    assert!(r.unwrap().as_object().unwrap().len() >= 2);
}

/// The template the CLI writes and the flake exports, with the model as its
/// nixpkgs and this repository as its miniguest input: every directory
/// under ./guests is a guest, so adding one adds a guest.
#[test]
fn the_templates_guests_evaluate_and_a_new_directory_is_a_new_guest() {
    let lib = need_model!();
    let dir = tempfile::tempdir().unwrap();
    common::copy_dir(&repo_root().join("template"), dir.path());
    let guests = |dir: &std::path::Path| {
        eval_quiet(
            &lib,
            &format!(
                r#"let t = (import {}/flake.nix).outputs {{ self = t; nixpkgs = model.nixpkgs; miniguest = flake; }}; in lib.mapAttrs (_: built) t.nixosConfigurations"#,
                dir.display()
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let names: Vec<String> = guests(dir.path())
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(names, ["container", "stateless"]);
    let extra = dir.path().join("guests/extra");
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::write(
        extra.join("default.nix"),
        "{ boot.miniguest = { enable = true; guestType = \"lxc\"; }; system.stateVersion = \"26.05\"; }",
    )
    .unwrap();
    let names: Vec<String> = guests(dir.path())
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(names, ["container", "extra", "stateless"]);
}

/// Credentials: the guest declares names, which reach the manifest (and a
/// VM's initrd gets the fw_cfg driver); the host module passes each
/// declared one's source to `create` and refuses what does not agree.
#[test]
fn credentials_are_declared_by_the_guest_and_supplied_by_the_host() {
    let lib = need_model!();
    let r = eval(
        &lib,
        r#"let c = guest { boot.miniguest.credentials = [ "api-token" ]; }; ct = guest { boot.miniguest.guestType = "lxc"; boot.miniguest.credentials = [ "a" ]; }; m = x: contract.mkManifest x.config.boot.miniguest; in { names = (m c).credentials; fwcfg = lib.elem "qemu_fw_cfg" c.config.boot.initrd.kernelModules; plain = lib.elem "qemu_fw_cfg" (guest { }).config.boot.initrd.kernelModules; ct = (m ct).credentials; }"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r["names"], serde_json::json!(["api-token"]), "{r}");
    assert_eq!(r["fwcfg"], true, "{r}");
    assert_eq!(r["plain"], false, "{r}");
    assert_eq!(r["ct"], serde_json::json!(["a"]), "{r}");

    fails_with(
        eval(
            &lib,
            r#"built (guest { boot.miniguest.credentials = [ "../etc/shadow" ]; })"#,
        ),
        "boot.miniguest.credentials.0: \"../etc/shadow\" is not a credential name",
    );
    let host = |extra: &str, attr: &str| {
        eval(
            &lib,
            &format!(
                r#"(eval [ root hostModule {{ miniguests.web = {{ configuration = vm {{ boot.miniguest.credentials = [ "api-token" ]; }}; }} // {extra}; }} ]).config.{attr}"#
            ),
        )
    };
    let script = r#"systemd.services."miniguest-define-web".script"#;
    let checked = "system.build.toplevel.drvPath";
    let unit = host(
        r#"{ credentials.api-token = "/run/secrets/token"; }"#,
        script,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        unit,
        "miniguest create -t libvirt --define --connect qemu:///system --credential 'api-token=/run/secrets/token' web\nminiguest restart --if-needed web"
    );
    fails_with(
        host("{ }", checked),
        "miniguests.web.credentials.api-token: guest web declares credential api-token",
    );
    fails_with(
        host(
            r#"{ credentials = { api-token = "/run/t"; other = "/run/o"; }; }"#,
            checked,
        ),
        "miniguests.web.credentials.other: guest web does not declare this credential",
    );
    fails_with(
        host(
            r#"{ credentials.api-token = "${builtins.storeDir}/x-secret"; }"#,
            checked,
        ),
        "must be an absolute path outside the Nix store",
    );
}

/// A NixOS host declaring one guest of each backend, as NixOS is: the
/// libvirt hook reaches the directory NixOS's libvirtd reads (through
/// `virtualisation.libvirtd.hooks.qemu`, which libvirtd-config links in),
/// virtiofs guests give libvirtd a virtiofsd, nspawn definitions go where
/// systemd reads them at run time (NixOS's /etc/systemd/system is a link
/// into the store), and container guests that start with the host have a
/// unit that starts them (NixOS runs no lxc-autostart).
#[test]
fn a_nixos_host_declares_one_guest_of_each_backend() {
    let lib = need_model!();
    let host = r#"eval [ root hostModule {
        virtualisation.libvirtd.enable = true;
        virtualisation.lxc.enable = true;
        miniguests.vm = { configuration = root // { boot.miniguest.qemu.fsType = "virtiofs"; }; autostart = true; };
        miniguests.ct = { configuration.boot.miniguest.guestType = "lxc"; autostart = true; };
        miniguests.sp = { configuration.boot.miniguest.guestType = "lxc"; backend = "nspawn"; autostart = true; };
      } ]"#;
    let r = eval(
        &lib,
        &format!(
            r#"let c = ({host}).config; s = c.systemd.services; in {{
              built = c.system.build.toplevel.drvPath;
              hooks = c.virtualisation.libvirtd.hooks.qemu;
              libvirtdConfig = s.libvirtd-config.script;
              vhostUser = map (p: p.name) c.virtualisation.libvirtd.qemu.vhostUserPackages;
              libvirtdPath = map (p: p.name or p) s.libvirtd.path;
              define = lib.mapAttrs (n: _: {{ inherit (s."miniguest-define-${{n}}") script after; path = map (p: p.name) s."miniguest-define-${{n}}".path; }}) c.miniguests;
              autostart = lib.filter (n: lib.hasPrefix "miniguest-autostart-" n) (lib.attrNames s);
              ctStart = {{ inherit (s.miniguest-autostart-ct) script preStop after wantedBy restartIfChanged; }};
              etcReadOnly = c.system.etcReadOnly;
            }}"#
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    // The hook: declared, and linked where libvirtd (sysconfdir
    // /var/lib) runs hooks from.
    let hook = r["hooks"]["miniguest"].as_str().expect("no miniguest hook");
    assert!(
        hook.ends_with("/libexec/miniguest/libvirt-qemu-hook"),
        "{hook}"
    );
    assert!(
        r["libvirtdConfig"].as_str().unwrap().contains(&format!(
            "ln -s --force {hook} /var/lib/libvirt/hooks/qemu.d/miniguest"
        )),
        "{}",
        r["libvirtdConfig"]
    );
    // virtiofsd for libvirt, and for what libvirtd runs.
    assert_eq!(r["vhostUser"], serde_json::json!(["virtiofsd-model"]));
    assert!(
        r["libvirtdPath"]
            .as_array()
            .unwrap()
            .contains(&"virtiofsd-model".into()),
        "{}",
        r["libvirtdPath"]
    );
    // nspawn: nothing is written under a tree NixOS keeps in the store.
    let read_only: Vec<&str> = r["etcReadOnly"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for (name, unit) in r["define"].as_object().unwrap() {
        let script = unit["script"].as_str().unwrap();
        for word in script.split_whitespace() {
            assert!(
                !read_only.iter().any(|dir| word.starts_with(dir)),
                "{name}'s define unit writes into {word}: {script}"
            );
        }
    }
    let nspawn = r["define"]["sp"]["script"].as_str().unwrap();
    assert!(
        nspawn.contains("--unit-dir /run/systemd/system")
            && nspawn.contains("--nspawn-dir /run/systemd/nspawn")
            && nspawn.contains("systemctl daemon-reload"),
        "{nspawn}"
    );
    // Autostart: libvirt starts its own; each container has a unit that
    // starts it at boot, stops it at shutdown, and no switch restarts.
    let mut autostart: Vec<&str> = r["autostart"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    autostart.sort();
    assert_eq!(
        autostart,
        ["miniguest-autostart-ct", "miniguest-autostart-sp"]
    );
    assert_eq!(r["ctStart"]["script"], "miniguest start ct");
    assert_eq!(r["ctStart"]["preStop"], "miniguest stop ct");
    assert_eq!(r["ctStart"]["restartIfChanged"], false);
    assert!(r["ctStart"]["wantedBy"]
        .as_array()
        .unwrap()
        .contains(&"multi-user.target".into()));
    assert!(r["ctStart"]["after"]
        .as_array()
        .unwrap()
        .contains(&"miniguest-define-ct.service".into()));
    // Each define unit is ordered after, and given, only its own
    // hypervisor; none after a unit NixOS does not have.
    assert_eq!(
        r["define"]["vm"]["after"],
        serde_json::json!(["libvirtd.service"])
    );
    for (name, unit) in r["define"].as_object().unwrap() {
        assert!(
            !unit["after"]
                .as_array()
                .unwrap()
                .contains(&"lxc.service".into()),
            "{name}: {unit}"
        );
    }
    let path = |n: &str| r["define"][n]["path"].to_string();
    assert!(
        path("vm").contains("libvirt") && !path("vm").contains("lxc"),
        "{}",
        path("vm")
    );
    assert!(
        path("ct").contains("lxc") && !path("ct").contains("libvirt"),
        "{}",
        path("ct")
    );
}

/// A guest declared for a hypervisor the host does not enable, or a
/// container given what only a VM has, fails evaluation naming the option.
#[test]
fn silent_misconfigurations_fail_naming_the_option() {
    let lib = need_model!();
    let host = |guest: &str, enable: &str| {
        format!(
            r#"(eval [ root hostModule {{ {enable} miniguests.g.configuration = {guest}; }} ]).config.system.build.toplevel.drvPath"#
        )
    };
    fails_with(
        eval(&lib, &host("root", "")),
        "miniguests.g: a guest defined in libvirt needs virtualisation.libvirtd.enable = true",
    );
    fails_with(
        eval(&lib, &host(r#"{ boot.miniguest.guestType = "lxc"; }"#, "")),
        "miniguests.g: a guest defined in lxc needs virtualisation.lxc.enable = true",
    );
    assert!(eval(
        &lib,
        &host(
            r#"{ boot.miniguest.guestType = "lxc"; }"#,
            "virtualisation.lxc.enable = true;"
        )
    )
    .is_ok());
    for (option, value) in [
        ("qemu.fsType", r#""virtiofs""#),
        ("memoryMiB", "2048"),
        ("vcpus", "2"),
        ("guestAgent.enable", "true"),
    ] {
        fails_with(
            eval(
                &lib,
                &format!(
                    r#"built (guest {{ boot.miniguest.guestType = "lxc"; boot.miniguest.{option} = {value}; }})"#
                ),
            ),
            &format!("boot.miniguest.{option}: only VM guests"),
        );
    }
    fails_with(
        eval(
            &lib,
            r#"built (guest { boot.miniguest.guestType = "lxc"; boot.miniguest.interfaces = [ { type = "bridge"; source = "br0"; forwardPorts = [ { host = 2222; guest = 22; } ]; } ]; })"#,
        ),
        "boot.miniguest.interfaces.0.forwardPorts: only VM guests forward ports",
    );
}

/// The manifest says what the guest runs: no agent when the guest turned
/// `services.qemuGuest` off.
#[test]
fn the_manifest_names_the_agent_only_when_the_guest_runs_it() {
    let lib = need_model!();
    let agent = |extra: &str| {
        eval(
            &lib,
            &format!(
                r#"let c = guest {{ {extra} }}; in (builtins.fromJSON (builtins.unsafeDiscardStringContext c.config.system.build.miniguest.manifestFile.text)).agent"#
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    assert_eq!(agent(""), true);
    assert_eq!(agent("services.qemuGuest.enable = false;"), false);
    assert_eq!(agent("boot.miniguest.guestAgent.enable = false;"), false);
}

/// Under systemd stage 1, the unit that finds the system waits for the
/// boot share too, where init= lives (nixpkgs orders it after the store's
/// mount only); the stand-in's stage 1 runs it as early as that lets it.
#[test]
fn systemd_stage_1_finds_the_system_after_the_boot_share() {
    let lib = need_model!();
    let r = eval(
        &lib,
        r#"(guest { }).config.boot.initrd.systemd.services.initrd-find-nixos-closure.unitConfig.RequiresMountsFor"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r,
        serde_json::json!(["/sysroot/nix/store", "/sysroot/boot"])
    );
}

/// The guest module works with NixOS's nixos-init, which refuses
/// boot.postBootCommands: the closure is registered by a unit.
#[test]
fn the_guest_module_works_with_nixos_init() {
    let lib = need_model!();
    let r = eval(
        &lib,
        r#"let c = guest { system.nixos-init.enable = true; }; in [ (built c) c.config.systemd.services.miniguest-register-closure.unitConfig.ConditionPathExists ]"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r[1], "/boot/nix-path-registration");
}

/// The flake's outputs evaluate without warnings, and its app has meta.
#[test]
fn the_flake_evaluates_quietly_and_its_app_has_meta() {
    let lib = need_model!();
    let r = eval_quiet(
        &lib,
        r#"[ flake.apps.x86_64-linux.default.meta.description flake.apps.x86_64-linux.default.program ]"#,
    );
    let r = r.unwrap_or_else(|e| panic!("{e}"));
    assert!(r[0].as_str().is_some_and(|d| !d.is_empty()), "{r}");
}
