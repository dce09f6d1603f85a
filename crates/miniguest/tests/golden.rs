//! Generated hypervisor configuration compared with checked-in files, and
//! the libvirt XML checked against libvirt's own schema. Regenerate with
//! MINIGUEST_BLESS=1 after an intended change, and review the diff.

mod common;

use std::path::{Path, PathBuf};

use miniguest::backend::container::idmap::IdMap;
use miniguest::backend::lxc::Container;
use miniguest::backend::{libvirt, GuestSpec, Kind};

const MAP: IdMap = IdMap {
    uid_start: 100000,
    gid_start: 100000,
    count: 65536,
};

fn spec(manifest: &str) -> GuestSpec {
    let mut s = common::spec_from_manifest(manifest);
    // A guest that declares credentials gets them from these host files.
    s.credentials = s
        .manifest
        .credentials
        .iter()
        .map(|name| miniguest::backend::credentials::Credential {
            name: name.clone(),
            source: PathBuf::from(format!("/var/lib/secrets/{name}")),
        })
        .collect();
    s
}

const STATELESS_9P: &str =
    r#"{"version":1,"guestType":"qemu","kernelParams":["console=ttyS0","init=/boot/init"]}"#;
const STATEFUL_VIRTIOFS: &str = r#"{"version":1,"guestType":"qemu","storeFs":"virtiofs","agent":true,"credentials":["api-token","ssh-host-key"],
  "kernelParams":["console=ttyS0"],"memoryMiB":2048,"vcpus":2,
  "volumes":[{"name":"var","mountPoint":"/var","sizeMiB":4096}],
  "shares":[{"tag":"data","source":"/srv/data & more","mountPoint":"/data","readOnly":true},{"tag":"scratch","source":"/srv/scratch","mountPoint":"/scratch","readOnly":false}],
  "interfaces":[{"type":"bridge","source":"br0","mac":"52:54:00:12:34:56"},{"type":"network","source":"default"}]}"#;
/// As STATEFUL_VIRTIOFS, with the interfaces plain QEMU takes.
const STATEFUL_VIRTIOFS_QEMU: &str = r#"{"version":1,"guestType":"qemu","storeFs":"virtiofs","agent":true,"credentials":["api-token","ssh-host-key"],
  "kernelParams":["console=ttyS0"],"memoryMiB":2048,"vcpus":2,
  "volumes":[{"name":"var","mountPoint":"/var","sizeMiB":4096}],
  "shares":[{"tag":"data","source":"/srv/data & more","mountPoint":"/data","readOnly":true},{"tag":"scratch","source":"/srv/scratch","mountPoint":"/scratch","readOnly":false}],
  "interfaces":[{"type":"bridge","source":"br0","mac":"52:54:00:12:34:56"},{"type":"user","forwardPorts":[{"host":2222,"guest":22}]}]}"#;
const CONTAINER: &str = r#"{"version":1,"guestType":"lxc","credentials":["api-token"],
  "volumes":[{"name":"state","mountPoint":"/var/lib/app","sizeMiB":1}],
  "shares":[{"tag":"media","source":"/srv/my media","mountPoint":"/media","readOnly":true}],
  "interfaces":[{"type":"bridge","source":"lxcbr0"}]}"#;

fn check(name: &str, actual: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("MINIGUEST_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing; run with MINIGUEST_BLESS=1", path.display()));
    assert_eq!(actual, expected, "{name} differs from its golden file");
    path
}

/// An LXC config without its include lines, which depend on where LXC is
/// installed.
fn portable(config: &str) -> String {
    config
        .lines()
        .filter(|l| !l.starts_with("lxc.include"))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn validate(path: &Path) {
    if !common::standin::which("virt-xml-validate") {
        assert!(
            std::env::var_os("MINIGUEST_REQUIRE_E2E").is_none(),
            "virt-xml-validate is missing"
        );
        eprintln!("skipped schema check: virt-xml-validate is not installed");
        return;
    }
    let out = std::process::Command::new("virt-xml-validate")
        .arg(path)
        .arg("domain")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn libvirt_stateless_9p() {
    let path = check(
        "stateless-9p.xml",
        &libvirt::domain_xml(&spec(STATELESS_9P)).unwrap(),
    );
    validate(&path);
}

#[test]
fn libvirt_stateful_virtiofs() {
    // With the hook command libvirt's QEMU hook finds in the metadata.
    let mut s = spec(STATEFUL_VIRTIOFS);
    s.hook = Some("/run/current-system/sw/bin/miniguest --guests-dir /etc/miniguests --profiles-dir /nix/var/nix/profiles/miniguest-profiles hook".into());
    let path = check("stateful-virtiofs.xml", &libvirt::domain_xml(&s).unwrap());
    validate(&path);
}

/// The QEMU command line, one argument a line: the lean device set
/// (`-nodefaults`, the machine, each device named).
fn qemu_argv(spec: &GuestSpec) -> String {
    let inv =
        miniguest::backend::qemu::invocation::invocation(spec, Path::new("/run/sockets")).unwrap();
    let mut text = String::new();
    for daemon in &inv.daemons {
        text.push_str(&format!("# daemon: {}\n", daemon.argv.join(" ")));
    }
    for arg in &inv.qemu {
        text.push_str(arg);
        text.push('\n');
    }
    text
}

#[test]
fn qemu_stateless_9p() {
    check("stateless-9p.qemu", &qemu_argv(&spec(STATELESS_9P)));
}

#[test]
fn qemu_stateful_virtiofs() {
    check(
        "stateful-virtiofs.qemu",
        &qemu_argv(&spec(STATEFUL_VIRTIOFS_QEMU)),
    );
}

/// Without KVM the guest gets pc with qboot: microvm has no clock the
/// kernel can fall back on when its PIT calibration fails under TCG.
#[test]
fn qemu_under_tcg_boots_pc_with_qboot() {
    let mut s = spec(STATELESS_9P);
    s.virt_type = miniguest::backend::VirtType::Qemu;
    let argv = qemu_argv(&s);
    assert!(argv.contains("-machine\npc\n"), "{argv}");
    assert!(
        argv.contains("-bios\n/usr/share/qemu/qboot.rom\n"),
        "{argv}"
    );
    assert!(argv.contains("-accel\ntcg\n"), "{argv}");
    // A machine asked for is used as it is, with its own firmware.
    s.machine = Some("q35".into());
    let argv = qemu_argv(&s);
    assert!(
        argv.contains("-machine\nq35\n") && !argv.contains("-bios"),
        "{argv}"
    );
}

#[test]
fn lxc_container_config() {
    let s = spec(CONTAINER);
    let container = Container {
        spec: &s,
        lxcpath: PathBuf::from("/var/lib/lxc"),
        idmap: Some(MAP),
        program_view: None,
        autostart: false,
    };
    let config = container.config().unwrap();
    check("container.lxc.conf", &portable(&config));

    // LXC itself parses the full config (include lines too).
    if !common::standin::which("lxc-create") {
        assert!(
            std::env::var_os("MINIGUEST_REQUIRE_E2E").is_none(),
            "lxc-create is missing"
        );
        eprintln!("skipped LXC parse: lxc is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("web.conf");
    std::fs::write(
        &conf,
        config.replace(
            "/var/lib/lxc/web/rootfs",
            &dir.path().join("rootfs").display().to_string(),
        ),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("rootfs")).unwrap();
    let out = std::process::Command::new("lxc-create")
        .arg("-P")
        .arg(dir.path().join("lxc"))
        .args(["-n", "web", "-t", "none", "-f"])
        .arg(&conf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "LXC rejected the config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = std::fs::read_to_string(dir.path().join("lxc/web/config")).unwrap();
    assert!(written.contains("lxc.init.cmd = /boot/init"), "{written}");
}

/// Where the host can idmap the program, the container binds the views
/// its pre-start hook mounts, and the hook is told the map.
#[test]
fn lxc_container_config_with_idmapped_program() {
    let mut s = spec(CONTAINER);
    s.hook = Some("/run/current-system/sw/bin/miniguest --guests-dir /etc/miniguests --profiles-dir /nix/var/nix/profiles/miniguest-profiles hook".into());
    let container = Container {
        spec: &s,
        lxcpath: PathBuf::from("/var/lib/lxc"),
        idmap: Some(MAP),
        program_view: Some(MAP),
        autostart: false,
    };
    check(
        "container-idmapped.lxc.conf",
        &portable(&container.config().unwrap()),
    );
}

/// Every backend refuses a guest of the other type, in the same words.
#[test]
fn a_vm_is_not_turned_into_a_container_or_back() {
    let vm = spec(STATELESS_9P);
    for kind in [Kind::Lxc, Kind::Nspawn] {
        let e = kind.capabilities().check(kind, &vm).unwrap_err();
        assert!(e.to_string().contains("is a VM"), "{e}");
    }
    for kind in [Kind::Libvirt, Kind::Qemu] {
        let e = kind
            .capabilities()
            .check(kind, &spec(CONTAINER))
            .unwrap_err();
        assert!(e.to_string().contains("is a container"), "{e}");
    }
}
