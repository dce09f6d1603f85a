//! The Nix side of the guest contract (nix/lib/contract.nix), evaluated by
//! real Nix, must agree with the Rust side: same layout, same defaults, and
//! every manifest it builds parses.

mod common;

use miniguest::contract::{self as manifest, files as layout, GuestType, Link, Manifest, ShareFs};

/// `nix eval --json --expr EXPR`.
fn nix_eval(expr: &str) -> serde_json::Value {
    // A private store and configuration, like every other test's.
    let env = common::TestEnv::new();
    let out = std::process::Command::new("nix")
        .envs(env.nix_env())
        .args(["eval", "--json", "--impure", "--expr", expr])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Evaluates EXPR with `c` bound to the contract.
fn eval(expr: &str) -> serde_json::Value {
    let contract = common::standin::repo_root().join("nix/lib/contract.nix");
    nix_eval(&format!("let c = import {}; in {expr}", contract.display()))
}

#[test]
fn layout_and_version_agree() {
    if !common::nix_available() {
        return;
    }
    let nix = eval("{ inherit (c) version layout; }");
    assert_eq!(nix["version"], manifest::VERSION);
    let l = &nix["layout"];
    for (key, rust) in [
        ("manifest", layout::MANIFEST),
        ("legacyManifest", layout::LEGACY_MANIFEST),
        ("kernel", layout::KERNEL),
        ("initrd", layout::INITRD),
        ("bootDir", layout::BOOT_DIR),
        ("init", layout::INIT),
        ("registration", layout::REGISTRATION),
        ("storeTag", layout::STORE_TAG),
        ("bootTag", layout::BOOT_TAG),
    ] {
        assert_eq!(l[key], rust, "layout.{key}");
    }
    assert_eq!(
        l.as_object().unwrap().len(),
        9,
        "a layout entry has no Rust twin"
    );
}

#[test]
fn defaults_agree() {
    if !common::nix_available() {
        return;
    }
    let built = eval(r#"c.mkManifest { guestType = "qemu"; }"#);
    let parsed = Manifest::parse(&built.to_string()).unwrap();
    let from_rust_defaults = Manifest::parse(r#"{"version":1,"guestType":"qemu"}"#).unwrap();
    assert_eq!(parsed, from_rust_defaults);
    assert!(parsed.is_stateless());
    let d = eval("c.defaults");
    assert_eq!(d["memoryMiB"], manifest::DEFAULT_MEMORY_MIB);
    assert_eq!(d["vcpus"], manifest::DEFAULT_VCPUS);
    assert_eq!(d["storeFs"], "9p");
}

#[test]
fn a_full_option_set_builds_a_manifest_rust_reads() {
    if !common::nix_available() {
        return;
    }
    let built = eval(
        r#"c.mkManifest {
            guestType = "qemu";
            qemu.fsType = "virtiofs";
            kernelParams = [ "console=ttyS0" "init=/boot/init" ];
            memoryMiB = 2048;
            vcpus = 2;
            volumes.var = { mountPoint = "/var"; sizeMiB = 4096; fsType = "ext4"; };
            shares.data = { source = "/srv/data"; mountPoint = "/data"; readOnly = true; };
            interfaces = [ { type = "bridge"; source = "br0"; mac = null; } { type = "user"; } ];
        }"#,
    );
    let m = Manifest::parse(&built.to_string()).unwrap();
    assert_eq!(m.guest_type, GuestType::Qemu);
    assert_eq!(m.store_fs, ShareFs::Virtiofs);
    assert_eq!(m.kernel_params, ["console=ttyS0", "init=/boot/init"]);
    assert_eq!((m.memory_mib, m.vcpus), (2048, 2));
    assert_eq!(m.volumes[0].name, "var");
    assert_eq!(m.volumes[0].size_mib, 4096);
    assert!(m.shares[0].read_only);
    let interfaces = m.interfaces.as_deref().unwrap();
    assert!(matches!(interfaces[0].link, Link::Bridge(_)));
    assert_eq!(interfaces[1].link, Link::User(vec![]));
    assert!(!m.is_stateless());
}

#[test]
fn every_enum_value_nix_offers_is_one_rust_accepts() {
    if !common::nix_available() {
        return;
    }
    let lists = eval("{ inherit (c) guestTypes storeFsTypes interfaceTypes; }");
    for t in lists["guestTypes"].as_array().unwrap() {
        let json = format!(r#"{{"version":1,"guestType":{t}}}"#);
        Manifest::parse(&json).unwrap_or_else(|e| panic!("{t}: {e:#}"));
    }
    for fs in lists["storeFsTypes"].as_array().unwrap() {
        let json = format!(r#"{{"version":1,"guestType":"qemu","storeFs":{fs}}}"#);
        Manifest::parse(&json).unwrap_or_else(|e| panic!("{fs}: {e:#}"));
    }
    for i in lists["interfaceTypes"].as_array().unwrap() {
        // Every type but user names a source.
        let source = if i == "user" { "null" } else { "\"x\"" };
        let json = format!(
            r#"{{"version":1,"guestType":"qemu","interfaces":[{{"type":{i},"source":{source}}}]}}"#
        );
        Manifest::parse(&json).unwrap_or_else(|e| panic!("{i}: {e:#}"));
    }
}

#[test]
fn the_flake_exports_the_template_the_binary_embeds() {
    if !common::nix_available() {
        return;
    }
    // templates.default needs no inputs, so it evaluates offline.
    let flake = common::standin::repo_root().join("flake.nix");
    let exported = nix_eval(&format!(
        "toString ((import {}).outputs {{ self = null; nixpkgs = null; }}).templates.default.path",
        flake.display()
    ));
    let exported = std::path::PathBuf::from(exported.as_str().unwrap());
    assert_eq!(exported, common::standin::repo_root().join("template"));
    // The cli tests check that `miniguest template` writes exactly template/.
    let embedded: Vec<&str> = miniguest::template::FILES.iter().map(|(p, _)| *p).collect();
    assert!(embedded.contains(&"flake.nix"), "{embedded:?}");
}

/// The checked values' rules are contract.nix's, which the guest and host
/// modules assert: the same limits, and the same verdict on every sample.
#[test]
fn the_values_rules_are_contract_nixs() {
    use miniguest::contract::values::{self, limits};
    if !common::nix_available() {
        return;
    }
    let l = eval("c.limits");
    assert_eq!(l["volumeName"], limits::VOLUME_NAME);
    assert_eq!(l["shareTag"], limits::SHARE_TAG);
    assert_eq!(l["bridge"], limits::BRIDGE);
    assert_eq!(l["network"], limits::NETWORK);
    assert_eq!(l["fsType"], limits::FS_TYPE);
    assert_eq!(l["credentialName"], limits::CREDENTIAL_NAME);
    assert_eq!(
        eval("c.credentialFwCfgPrefix"),
        miniguest::backend::credentials::FW_CFG_PREFIX
    );
    assert_eq!(
        eval("c.containerCredentialsDir"),
        miniguest::backend::credentials::CONTAINER_DIR
    );
    assert_eq!(l["guestName"], miniguest::guest::name::MAX_LEN);

    let names = [
        "",
        "a",
        "data",
        "a b",
        "a.b",
        "boot",
        "nix-store",
        "x_y-z",
        "x\n",
        &"v".repeat(20),
        &"v".repeat(21),
        &"t".repeat(36),
        &"t".repeat(37),
    ];
    let paths = [
        "/",
        "//",
        "/var",
        "var",
        "/a/../b",
        "/a/./b",
        "/srv/my data",
        "/a\nb",
        "/a'b\"c$(x)",
        "/srv/..",
        "/..x/y",
    ];
    let objects = [
        "br0",
        "-br",
        ".br",
        "br.0",
        "br_0",
        "a b",
        "",
        &"b".repeat(15),
        &"b".repeat(16),
        &"n".repeat(64),
        &"n".repeat(65),
    ];
    let macs = [
        "52:54:00:12:34:56",
        "52:54:00:12:34:5g",
        "52:54:00:12:34",
        "AA:BB:CC:DD:EE:FF",
    ];
    let fs_types = [
        "ext4",
        "Ext4",
        "xfs",
        "",
        "a-b",
        &"f".repeat(16),
        &"f".repeat(17),
    ];
    let guest_names = [
        "web",
        "a-5-link",
        "a-link",
        "-a",
        "a.b",
        "db1",
        &"g".repeat(63),
        &"g".repeat(64),
    ];
    let credential_names = [
        "ssh-host-key",
        "api.token",
        "a_b",
        ".hidden",
        "-a",
        "a/b",
        "/etc/shadow",
        "",
        "a b",
        &"c".repeat(28),
        &"c".repeat(29),
    ];
    fn rust<T: TryFrom<String>>(samples: &[&str]) -> Vec<bool> {
        samples
            .iter()
            .map(|s| T::try_from(s.to_string()).is_ok())
            .collect()
    }
    let nix = |rule: &str, samples: &[&str]| -> Vec<bool> {
        let json = serde_json::to_string(samples).unwrap();
        let verdicts = eval(&format!(
            "map c.valid.{rule} (builtins.fromJSON {})",
            serde_json::to_string(&json).unwrap()
        ));
        serde_json::from_value(verdicts).unwrap()
    };
    let checks: Vec<(&str, &[&str], Vec<bool>)> = vec![
        ("volumeName", &names, rust::<values::VolumeName>(&names)),
        ("shareTag", &names, rust::<values::Tag>(&names)),
        ("mountPoint", &paths, rust::<values::MountPoint>(&paths)),
        ("hostPath", &paths, rust::<values::HostPath>(&paths)),
        ("bridge", &objects, rust::<values::IfName>(&objects)),
        ("network", &objects, rust::<values::NetName>(&objects)),
        ("mac", &macs, rust::<values::Mac>(&macs)),
        ("fsType", &fs_types, rust::<values::FsType>(&fs_types)),
        (
            "credentialName",
            &credential_names,
            rust::<values::CredentialName>(&credential_names),
        ),
    ];
    for (rule, samples, rust_verdicts) in checks {
        assert_eq!(nix(rule, samples), rust_verdicts, "{rule} on {samples:?}");
    }
    let rust_names: Vec<bool> = guest_names
        .iter()
        .map(|n| n.parse::<miniguest::guest::GuestName>().is_ok())
        .collect();
    assert_eq!(nix("guestName", &guest_names), rust_names);

    // The host module's `backend` takes exactly the backends that keep a
    // definition.
    let definable: Vec<&str> = miniguest::backend::Kind::DEFINABLE
        .iter()
        .map(|k| k.name())
        .collect();
    assert_eq!(eval("c.definableBackends"), serde_json::json!(definable));
    assert_eq!(eval("c.agentPort"), miniguest::backend::agent::PORT);
}

/// The manifest table in docs/contract.md names every field the parser
/// takes, and no other: serde's own list of the fields it expects (which
/// it gives when refusing an unknown one) against the table's first column.
#[test]
fn the_manifest_table_lists_every_field_the_parser_takes() {
    let refused = Manifest::parse(r#"{"version":1,"guestType":"qemu","notAField":1}"#)
        .unwrap_err()
        .to_string();
    let expected = refused
        .split("expected one of ")
        .nth(1)
        .unwrap_or_else(|| panic!("serde named no fields: {refused}"));
    let mut parser: Vec<String> = expected
        .split(", ")
        .map(|f| f.trim().trim_matches('`').to_owned())
        .collect();
    parser.sort();

    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/contract.md"),
    )
    .unwrap();
    let table = doc
        .split("## Manifest (`miniguest.json`)")
        .nth(1)
        .expect("docs/contract.md has a manifest section")
        .lines()
        .skip_while(|l| !l.starts_with("| field |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'));
    let mut documented: Vec<String> = table
        .flat_map(|row| {
            let first = row.split('|').nth(1).unwrap_or("").to_owned();
            first
                .split(',')
                .map(|f| f.trim().trim_matches('`').to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    documented.sort();
    assert_eq!(
        documented, parser,
        "docs/contract.md's manifest table and the parser disagree"
    );
}
