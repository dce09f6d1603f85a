//! What wrapping Nix costs: `miniguest install` and `upgrade` against the
//! bare `nix build` + `nix-env --set` they wrap, `miniguest list` with
//! 1,000 guests, and `upgrade --all` of 20 guests of one costly flake
//! against 20 separate upgrades. Figures are printed, not asserted.
//! Run: cargo bench.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const ROUNDS: usize = 15;

#[path = "../tests/common/mod.rs"]
mod common;

use common::TestEnv as Env;

fn run(mut c: Command) -> Vec<u8> {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn time(mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn bare_install(env: &Env, profile: &Path, refresh: bool) {
    let mut build = Command::new("nix");
    build.envs(env.nix_env());
    build.args(["build", "--json", "--no-link"]);
    if refresh {
        build.arg("--refresh");
    }
    build.arg(env.flake("nixosConfigurations.vm.config.system.build.miniguest"));
    let json: serde_json::Value = serde_json::from_slice(&run(build)).unwrap();
    let out = json[0]["outputs"]["out"].as_str().unwrap().to_owned();
    let mut set = Command::new("nix-env");
    set.envs(env.nix_env());
    set.arg("--profile").arg(profile).args(["--set", &out]);
    run(set);
}

fn main() {
    if Command::new("nix").arg("--version").output().is_err() {
        println!("skipped: nix is not installed (scripts/setup-host.sh)");
        return;
    }
    let env = Env::new();
    std::fs::create_dir_all(env.path("bare")).unwrap();
    let bare_profile = env.path("bare/vm");
    // Warm up: the derivation is built once; every round then measures the
    // wrapping, not the build.
    run({
        let mut c = env.std_cmd();
        c.args(["install", &env.flake("vm")]);
        c
    });
    bare_install(&env, &bare_profile, false);

    let (mut ours, mut bare) = (Vec::new(), Vec::new());
    let (mut ours_up, mut bare_up) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        ours.push(time(|| {
            let mut c = env.std_cmd();
            c.args(["install", "--force", &env.flake("vm")]);
            run(c);
        }));
        bare.push(time(|| bare_install(&env, &bare_profile, false)));
        ours_up.push(time(|| {
            let mut c = env.std_cmd();
            c.args(["upgrade", "vm"]);
            run(c);
        }));
        bare_up.push(time(|| bare_install(&env, &bare_profile, true)));
    }
    let report = |what: &str, ours: Vec<Duration>, bare: Vec<Duration>| {
        let (o, b) = (median(ours), median(bare));
        println!(
            "{what:<28} miniguest {:>7.1} ms   bare nix {:>7.1} ms   ratio {:.3}  (target <= 1.10)",
            ms(o),
            ms(b),
            o.as_secs_f64() / b.as_secs_f64()
        );
    };
    println!("median of {ROUNDS} rounds, builds cached:");
    report("install (no change)", ours, bare);
    report("upgrade (no change)", ours_up, bare_up);

    // 1,000 guests: profiles laid out exactly as nix-env makes them.
    let target = std::fs::canonicalize(env.profile("vm")).unwrap();
    for i in 0..1000 {
        let name = format!("g{i:04}");
        let gen_link = env.profiles_dir().join(format!("{name}-1-link"));
        symlink(&target, &gen_link).unwrap();
        symlink(format!("{name}-1-link"), env.profile(&name)).unwrap();
        symlink(env.profile(&name), env.link(&name)).unwrap();
    }
    for args in [&["list"][..], &["list", "--json"]] {
        let rounds: Vec<Duration> = (0..ROUNDS)
            .map(|_| {
                time(|| {
                    let mut c = env.std_cmd();
                    c.args(args);
                    run(c);
                })
            })
            .collect();
        let rows = {
            let mut c = env.std_cmd();
            c.args(["list", "--json"]);
            serde_json::from_slice::<serde_json::Value>(&run(c))
                .unwrap()
                .as_array()
                .unwrap()
                .len()
        };
        println!(
            "{:<28} {rows} guests: median {:>6.1} ms  (target < 100 ms)",
            format!("miniguest {}", args.join(" ")),
            ms(median(rounds))
        );
    }

    upgrade_all_against_separate_upgrades();
}

/// 20 guests of one flake whose evaluation spends about a second on a
/// shared value, as nixpkgs does: `upgrade --all` (one `nix build` for the
/// flake) against 20 `upgrade NAME`.
fn upgrade_all_against_separate_upgrades() {
    let env = Env::new();
    let names: Vec<String> = (0..20).map(|i| format!("c{i:02}")).collect();
    std::fs::write(
        env.flake_dir().join("flake.nix"),
        format!(
            r#"{{
  outputs = {{ self }}:
    let
      version = builtins.readFile ./version;
      # Costly and shared: every guest depends on it.
      costly = builtins.foldl' builtins.add 0 (builtins.genList (x: x) 1500000);
      guest = name: {{
        config.system.build.miniguest = derivation {{
          name = "miniguest-${{name}}";
          system = "x86_64-linux";
          builder = "/bin/sh";
          args = [ "-c" "export PATH=/usr/bin:/bin; mkdir -p $out/boot; echo '#!/bin/sh' > $out/boot/init; echo k > $out/kernel; echo i > $out/initrd; echo '{{\"version\":1,\"guestType\":\"qemu\"}}' > $out/miniguest.json; echo ${{toString costly}} ${{version}} > $out/boot/stamp" ];
        }};
      }};
    in {{ nixosConfigurations = builtins.listToAttrs (map (n: {{ name = n; value = guest n; }}) [ {} ]); }};
}}"#,
            names.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(" ")
        ),
    )
    .unwrap();
    env.set_version("1");
    for name in &names {
        let mut c = env.std_cmd();
        c.args(["install", &env.flake(name)]);
        run(c);
    }
    env.set_version("2");
    let batch = time(|| {
        let mut c = env.std_cmd();
        c.args(["upgrade", "--all"]);
        run(c);
    });
    env.set_version("3");
    let separate = time(|| {
        for name in &names {
            let mut c = env.std_cmd();
            c.args(["upgrade", name]);
            run(c);
        }
    });
    println!(
        "upgrade --all, 20 guests       {:>7.0} ms   20 separate upgrades {:>7.0} ms   speed-up {:.2}x  (target >= 5x)",
        ms(batch),
        ms(separate),
        separate.as_secs_f64() / batch.as_secs_f64()
    );
}
