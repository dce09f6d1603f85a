//! What a closure-only store view costs at start: for a closure of 1,000
//! store paths (made for the run in a private store), the time to read
//! and check the closure (the registration, against `nix-store --query
//! --requisites`) and to build the view (a tmpfs and one read-only bind per
//! path), against the one read-only bind of the whole store a full view
//! needs; and the mount-table entries each leaves on the host. Figures are
//! printed, not asserted. Needs root. Run: cargo bench --bench store_view.

use std::process::Command;
use std::time::{Duration, Instant};

use miniguest::backend::store_view;

#[path = "../tests/common/mod.rs"]
mod common;

const PATHS: usize = 1000;
const ROUNDS: usize = 7;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mounts() -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count()
}

fn nix(env: &common::TestEnv, args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .envs(env.nix_env())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn main() {
    if !rustix::process::geteuid().is_root() || !common::nix_available() {
        println!("skipped: the store view benchmark needs root and nix");
        return;
    }
    // A private store, so that the closure is exactly what this run made.
    let env = common::TestEnv::new();
    let store = env.store_dir();
    // 999 files and a root that refers to them all: a closure of 1,000.
    let expr = format!(
        "let files = builtins.genList (i: builtins.toFile \"p${{toString i}}\" \"path ${{toString i}}\") {}; in builtins.toFile \"root\" (builtins.concatStringsSep \"\\n\" files)",
        PATHS - 1
    );
    let root = nix(
        &env,
        &[
            "nix-instantiate",
            "--read-write-mode",
            "--eval",
            "--expr",
            &expr,
        ],
    );
    let root = root.trim().trim_matches('"').to_owned();
    let requisites = nix(&env, &["nix-store", "--query", "--requisites", &root]);
    let paths: Vec<&str> = requisites.lines().collect();
    assert_eq!(paths.len(), PATHS, "the closure is not {PATHS} paths");
    let mut dump_args = vec!["nix-store", "--dump-db"];
    dump_args.extend(&paths);
    let registration = nix(&env, &dump_args);

    // The view's source: the store, as a mount of its own.
    let source = env.path("store-mount");
    std::fs::create_dir_all(&source).unwrap();
    rustix::mount::mount_bind(&store, &source).unwrap();
    let name: miniguest::guest::GuestName = "bench".parse().unwrap();
    let target = env.path("view");
    let before = mounts();
    let (mut check, mut build, mut full) = (vec![], vec![], vec![]);
    let mut during = 0;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let names = miniguest::contract::registration::parse(&registration, &store).unwrap();
        let known: std::collections::HashSet<String> =
            nix(&env, &["nix-store", "--query", "--requisites", &root])
                .lines()
                .map(|p| p.rsplit('/').next().unwrap().to_owned())
                .collect();
        assert!(names.iter().all(|n| known.contains(n)));
        check.push(start.elapsed());

        let start = Instant::now();
        store_view::build(&name, &target, &source, &names, None).unwrap();
        build.push(start.elapsed());
        during = mounts() - before;
        assert_eq!(std::fs::read_dir(&target).unwrap().count(), PATHS);
        store_view::remove(&target).unwrap();

        // Baseline: the full view, one read-only bind of the whole store.
        let start = Instant::now();
        rustix::mount::mount_bind(&source, &target).unwrap();
        rustix::mount::mount_remount(
            &target,
            rustix::mount::MountFlags::BIND | rustix::mount::MountFlags::RDONLY,
            "",
        )
        .unwrap();
        full.push(start.elapsed());
        store_view::remove(&target).unwrap();
    }
    let after = mounts() - before;
    let _ = rustix::mount::unmount(&source, rustix::mount::UnmountFlags::DETACH);
    let (check, build, full) = (median(check), median(build), median(full));
    println!("closure-only store view, {PATHS} paths (median of {ROUNDS}):");
    println!("  read and check the closure: {:.1} ms", ms(check));
    println!("  build the view:             {:.1} ms", ms(build));
    println!(
        "  at start, in all:           {:.1} ms, against {:.2} ms for the full store's one bind ({:.0}x)",
        ms(check + build),
        ms(full),
        (check + build).as_secs_f64() / full.as_secs_f64()
    );
    println!(
        "  mount-table entries while it is on the host: {during} (the full store: 1); after it is removed: {after}"
    );
    println!("  (libvirt: removed from the host once QEMU has its copy; LXC: kept while the container runs; run: never on the host)");
}
