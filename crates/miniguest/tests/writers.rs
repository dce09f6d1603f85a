//! Property tests of the format writers: hostile strings in every string a
//! guest output (or the user's paths) can supply reach LXC's config, the
//! domain XML and the printed scripts only through their writer. Either the
//! writer refuses the value, or the result means exactly what it should:
//! the same keys, the same XML values, the same commands and arguments.

mod common;

use std::path::PathBuf;

use miniguest::backend::container::idmap::IdMap;
use miniguest::backend::libvirt::virt_install::virsh_script;
use miniguest::backend::lxc::Container;
use miniguest::backend::{libvirt, nspawn, qemu, GuestSpec};
use miniguest::contract::{Interface, Link, Share, Volume};
use proptest::prelude::*;

const MAP: IdMap = IdMap {
    uid_start: 100000,
    gid_start: 100000,
    count: 65536,
};

fn hostile() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        Just("\n".to_string()),
        Just("\r".to_string()),
        Just("\t".to_string()),
        Just("'".to_string()),
        Just("\"".to_string()),
        Just("\\".to_string()),
        Just(" ".to_string()),
        Just("#".to_string()),
        Just("=".to_string()),
        Just(",".to_string()),
        Just(":".to_string()),
        Just("$(touch PWNED)".to_string()),
        Just("`touch PWNED`".to_string()),
        Just(";touch PWNED;".to_string()),
        Just("MINIGUEST_LXC_CONFIG".to_string()),
        Just("MINIGUEST_DOMAIN_XML".to_string()),
        Just("\nlxc.hook.pre-start = /bin/sh -c 'touch PWNED'\n".to_string()),
        Just("]]><evil/><!--".to_string()),
        Just("&amp;&".to_string()),
        "[a-z0-9]{1,4}".prop_map(|s| s),
        any::<String>(),
    ];
    // Half the time without control characters, so that most of those
    // cases get past the writers' refusal and must then mean the same.
    (proptest::collection::vec(fragment, 1..5), any::<bool>()).prop_map(|(parts, plain)| {
        let text = parts.concat();
        if plain {
            text.chars().filter(|c| !c.is_control()).collect()
        } else {
            // A path on the command line can never hold NUL.
            text.replace('\0', "")
        }
    })
}

/// A checked value from a hostile string, or a plain one where the
/// value's own rule refuses it (that refusal is the contract's, tested
/// with the values themselves): what reaches a writer is every hostile
/// string a checked value can hold, and every unchecked one.
fn typed<T: TryFrom<String>>(value: String, fallback: &str) -> T {
    T::try_from(value)
        .or_else(|_| T::try_from(fallback.to_owned()))
        .unwrap_or_else(|_| panic!("fallback {fallback:?} is valid"))
}

/// A guest carrying hostile strings in every string field.
fn spec(container: bool, h: &[String]) -> GuestSpec {
    let kind = if container { "lxc" } else { "qemu" };
    let mut spec = common::spec_from_manifest(&format!(r#"{{"version":1,"guestType":"{kind}"}}"#));
    spec.manifest.kernel_params = vec![h[0].clone()];
    spec.manifest.shares = vec![Share {
        tag: typed("data".into(), "data"),
        source: typed(format!("/{}", h[1]), "/srv/data"),
        mount_point: typed(format!("/{}", h[2]), "/mnt/data"),
        read_only: false,
    }];
    spec.manifest.volumes = vec![Volume {
        name: typed("v".into(), "v"),
        mount_point: typed(format!("/{}", h[3]), "/var/v"),
        size_mib: 1,
        fs_type: typed("ext4".into(), "ext4"),
    }];
    spec.interfaces = vec![Interface {
        link: Link::Bridge(typed(h[4].clone(), "br0")),
        mac: Some(typed(h[5].clone(), "52:54:00:00:00:01")),
    }];
    spec.manifest.interfaces = Some(spec.interfaces.clone());
    spec.root = PathBuf::from(format!("/g{}/web", h[6]));
    spec.console_log = Some(PathBuf::from(format!("/log{}", h[7])));
    spec.volume_dir = PathBuf::from(format!("/state{}/web", h[8]));
    spec
}

fn bridge(spec: &GuestSpec) -> String {
    match &spec.interfaces[0].link {
        Link::Bridge(br) => br.to_string(),
        other => panic!("not a bridge: {other:?}"),
    }
}

fn fstab_unescape(field: &str) -> String {
    let mut out = String::new();
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = u32::from_str_radix(&rest[i + 1..i + 4], 8).unwrap();
        out.push(char::from_u32(code).unwrap());
        rest = &rest[i + 4..];
    }
    out.push_str(rest);
    out
}

/// Reads a config the way LXC does: one `key = value` a line, comments
/// and blank lines skipped, white space around both trimmed.
fn lxc_entries(config: &str) -> Vec<(String, String)> {
    config
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("every line is key = value");
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .filter(|(k, _)| k != "lxc.include")
        .collect()
}

fn check_lxc(spec: &GuestSpec) {
    let container = Container {
        spec,
        lxcpath: PathBuf::from("/lxc"),
        idmap: Some(MAP),
        program_view: None,
        autostart: false,
    };
    let Ok(config) = container.config() else {
        return;
    };
    let entries = lxc_entries(&config);
    let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "lxc.uts.name",
            "lxc.rootfs.path",
            "lxc.idmap",
            "lxc.idmap",
            "lxc.mount.entry",
            "lxc.mount.entry",
            "lxc.mount.entry",
            "lxc.mount.entry",
            "lxc.init.cmd",
            "lxc.signal.halt",
            "lxc.cap.drop",
            "lxc.net.0.type",
            "lxc.net.0.link",
            "lxc.net.0.flags",
            "lxc.net.0.hwaddr",
            "lxc.console.logfile",
        ],
        "{config}"
    );
    let value = |key: &str| entries.iter().find(|(k, _)| k == key).unwrap().1.clone();
    assert_eq!(value("lxc.net.0.link"), bridge(spec));
    assert_eq!(
        value("lxc.net.0.hwaddr"),
        spec.interfaces[0].mac.as_ref().unwrap().as_str()
    );
    let mounts: Vec<Vec<String>> = entries
        .iter()
        .filter(|(k, _)| k == "lxc.mount.entry")
        .map(|(_, v)| v.split(' ').map(fstab_unescape).collect())
        .collect();
    assert_eq!(mounts[1][0], spec.boot_dir().to_str().unwrap());
    assert_eq!(
        mounts[2][0],
        spec.volume_directory(&spec.manifest.volumes[0])
            .to_str()
            .unwrap()
    );
    assert_eq!(
        mounts[2][1],
        spec.manifest.volumes[0]
            .mount_point
            .as_str()
            .trim_start_matches('/')
    );
    assert_eq!(mounts[3][0], spec.manifest.shares[0].source.as_str());
    assert!(mounts.iter().all(|m| m.len() == 6), "{mounts:?}");
}

fn check_xml(spec: &GuestSpec, plain: bool) {
    let xml = match libvirt::domain_xml(spec) {
        Ok(xml) => xml,
        Err(e) if !plain => return drop(e),
        Err(e) => panic!("refused a value without control characters: {e:#}"),
    };
    let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
    let text = |tag: &str| {
        doc.descendants()
            .find(|n| n.has_tag_name(tag))
            .and_then(|n| n.text())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(text("cmdline"), spec.cmdline());
    assert_eq!(text("kernel"), spec.kernel().to_str().unwrap());
    assert_eq!(text("name"), "web");
    let attr = |tag: &str, name: &str| -> Vec<String> {
        doc.descendants()
            .filter(|n| n.has_tag_name(tag))
            .filter_map(|n| n.attribute(name).map(str::to_owned))
            .collect()
    };
    let dirs = attr("source", "dir");
    assert_eq!(dirs[1], spec.boot_dir().to_str().unwrap());
    assert_eq!(dirs[2], spec.manifest.shares[0].source.as_str());
    assert_eq!(attr("source", "bridge"), [bridge(spec)]);
    assert_eq!(
        attr("mac", "address"),
        [spec.interfaces[0].mac.clone().unwrap().to_string()]
    );
    // The console is a pty whose output libvirt logs to the file.
    assert_eq!(
        attr("log", "file"),
        [spec.console_log.as_ref().unwrap().to_str().unwrap()]
    );
    assert_eq!(
        doc.descendants().filter(|n| n.has_tag_name("evil")).count(),
        0
    );
}

const STUBBED: &[&str] = &[
    "lxc-create",
    "virsh",
    "mkdir",
    "chown",
    "truncate",
    "qemu-system-x86_64",
    "systemd-nspawn",
];

/// Runs a printed script with every program it may call stubbed and
/// nothing else on PATH; returns what was called.
fn run_script(script: &str) -> Vec<common::Call> {
    let env = common::TestEnv::new();
    let stubs = common::stub_dir(&env, STUBBED);
    let work = env.path("work");
    std::fs::create_dir_all(&work).unwrap();
    let out = std::process::Command::new("/bin/sh")
        .args(["-c", script])
        .current_dir(&work)
        .env_clear()
        .env("PATH", &stubs)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !work.join("PWNED").exists(),
        "the script ran a value: {script}"
    );
    common::calls(&stubs)
}

fn call(argv: &[&str], stdin: &str) -> common::Call {
    common::Call {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        stdin: stdin.to_owned(),
    }
}

fn check_scripts(vm: &GuestSpec, ct: &GuestSpec) {
    if let Ok(xml) = libvirt::domain_xml(vm) {
        let script = virsh_script(&xml, "web", "qemu:///system");
        assert_eq!(
            run_script(&script),
            [
                call(
                    &["virsh", "-c", "qemu:///system", "define", "/dev/stdin"],
                    &xml
                ),
                call(&["virsh", "-c", "qemu:///system", "start", "web"], ""),
            ]
        );
    }
    if let Ok(script) = qemu::script(vm) {
        let argv = qemu::invocation::invocation(vm, std::path::Path::new("."))
            .unwrap()
            .qemu;
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        assert_eq!(run_script(&script), [call(&argv, "")]);
    }
    let container = Container {
        spec: ct,
        lxcpath: PathBuf::from("/lxc"),
        idmap: Some(MAP),
        program_view: None,
        autostart: false,
    };
    if let (Ok(script), Ok(config)) = (container.script(), container.config()) {
        let rootfs = container.rootfs();
        let volume = ct.volume_directory(&ct.manifest.volumes[0]);
        let (rootfs, volume) = (rootfs.to_str().unwrap(), volume.to_str().unwrap());
        assert_eq!(
            run_script(&script),
            [
                call(&["mkdir", "-p", rootfs], ""),
                call(&["chown", "-h", "100000:100000", rootfs], ""),
                call(&["mkdir", "-p", volume], ""),
                call(&["chown", "-h", "100000:100000", volume], ""),
                call(
                    &[
                        "lxc-create",
                        "-P",
                        "/lxc",
                        "-n",
                        "web",
                        "-t",
                        "none",
                        "-f",
                        "/dev/stdin"
                    ],
                    &config
                ),
            ]
        );
    }
    let machine = nspawn::model(ct, Some(MAP), false).unwrap();
    if let (Ok(script), Ok(argv)) = (nspawn::script(ct, &machine), machine.argv()) {
        let calls = run_script(&script);
        let last = calls.last().unwrap();
        assert_eq!(last.argv, argv);
        assert!(calls[..calls.len() - 1]
            .iter()
            .all(|c| c.argv[0] == "mkdir" || c.argv[0] == "chown"));
    }
}

/// The `.nspawn` settings read as systemd reads them: sections, then
/// `Key=value` lines.
fn check_nspawn_settings(spec: &GuestSpec) {
    let Ok(settings) = nspawn::model(spec, Some(MAP), false).and_then(|m| m.settings()) else {
        return;
    };
    let mut keys = Vec::new();
    for line in settings
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        if line.starts_with('[') {
            keys.push(line.to_owned());
            continue;
        }
        let (k, v) = line.split_once('=').expect("every line is Key=value");
        keys.push(k.to_owned());
        if k == "Bridge" {
            assert_eq!(v, bridge(spec));
        }
    }
    assert_eq!(
        keys,
        [
            "[Exec]",
            "Boot",
            "Parameters",
            "KillSignal",
            "PrivateUsers",
            "[Files]",
            "BindReadOnly",
            "BindReadOnly",
            "Bind",
            "Bind",
            "[Network]",
            "Private",
            "VirtualEthernet",
            "Bridge"
        ],
        "{settings}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn hostile_strings_never_change_what_a_writer_means(h in proptest::collection::vec(hostile(), 9)) {
        check_lxc(&spec(true, &h));
        let plain = h.iter().all(|s| !s.chars().any(char::is_control));
        check_xml(&spec(false, &h), plain);
        check_scripts(&spec(false, &h), &spec(true, &h));
        check_nspawn_settings(&spec(true, &h));
    }
}

/// The same writers, fed values that pass every check, as LXC itself
/// reads them: real `lxc-create` parses the config.
#[test]
fn lxc_parses_a_config_of_odd_but_valid_values() {
    if !common::standin::which("lxc-create") {
        assert!(
            std::env::var_os("MINIGUEST_REQUIRE_E2E").is_none(),
            "lxc-create is missing"
        );
        eprintln!("skipped: lxc-create is not installed");
        return;
    }
    let odd = "a b#c=d'e\"f$(touch PWNED)`g`;h\\i";
    let mut spec = spec(
        true,
        &[
            "quiet".into(),
            format!("srv/{odd}"),
            format!("mnt/{odd}"),
            format!("var/{odd}"),
            "br0".into(),
            "52:54:00:00:00:01".into(),
            odd.into(),
            odd.into(),
            odd.into(),
        ],
    );
    spec.interfaces.clear();
    let env = common::TestEnv::new();
    let lxcpath = env.path("lxc");
    let container = Container {
        spec: &spec,
        lxcpath: lxcpath.clone(),
        idmap: Some(MAP),
        program_view: None,
        autostart: false,
    };
    let config = env.path("config");
    std::fs::write(&config, container.config().unwrap()).unwrap();
    std::fs::create_dir_all(container.rootfs()).unwrap();
    let out = std::process::Command::new("lxc-create")
        .arg("-P")
        .arg(&lxcpath)
        .args(["-n", "web", "-t", "none", "-f"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let item = |key: &str| {
        let out = std::process::Command::new("lxc-info")
            .arg("-P")
            .arg(&lxcpath)
            .args(["-n", "web", "-c", key])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mounts = item("lxc.mount.entry");
    // Ours, beside those LXC's own common.conf adds.
    assert_eq!(
        mounts.lines().filter(|l| l.contains("create=dir")).count(),
        4,
        "{mounts}"
    );
    assert!(
        item("lxc.hook.pre-start").trim().ends_with('='),
        "a hook appeared"
    );
    let console = item("lxc.console.logfile");
    assert_eq!(console.trim(), format!("lxc.console.logfile = /log{odd}"));
    assert!(!env.path("PWNED").exists());
}
