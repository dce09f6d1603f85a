//! What wrapping Nix costs: `miniguest install` and `upgrade` against the
//! bare `nix build` + `nix-env --set` they wrap, and `miniguest list` with
//! 1,000 guests. Figures are printed, not asserted. Run: cargo bench.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const ROUNDS: usize = 15;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let env = Env { dir };
        std::fs::create_dir_all(env.p("conf")).unwrap();
        std::fs::write(env.p("registry.json"), r#"{"flakes":[],"version":2}"#).unwrap();
        std::fs::write(
            env.p("conf/nix.conf"),
            format!(
                "experimental-features = nix-command flakes\nsubstituters =\nflake-registry = {}\nsandbox = false\nbuild-users-group =\n",
                env.p("registry.json").display()
            ),
        )
        .unwrap();
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny");
        std::fs::create_dir_all(env.p("flake")).unwrap();
        for f in ["flake.nix", "version"] {
            std::fs::copy(fixture.join(f), env.p("flake").join(f)).unwrap();
        }
        env
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env("NIX_STORE_DIR", self.p("store"))
            .env("NIX_STATE_DIR", self.p("var"))
            .env("NIX_LOG_DIR", self.p("log"))
            .env("NIX_CONF_DIR", self.p("conf"))
            .env("XDG_CACHE_HOME", self.p("cache"))
            .env("MINIGUEST_GUESTS_DIR", self.p("guests"))
            .env("MINIGUEST_PROFILES_DIR", self.p("profiles"))
            .env_remove("NIX_CONFIG");
        c
    }

    fn miniguest(&self) -> Command {
        self.cmd(env!("CARGO_BIN_EXE_miniguest"))
    }

    fn flake(&self, attr: &str) -> String {
        format!("path:{}#{attr}", self.p("flake").display())
    }
}

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
    let mut build = env.cmd("nix");
    build.args(["build", "--json", "--no-link"]);
    if refresh {
        build.arg("--refresh");
    }
    build.arg(env.flake("nixosConfigurations.vm.config.system.build.miniguest"));
    let json: serde_json::Value = serde_json::from_slice(&run(build)).unwrap();
    let out = json[0]["outputs"]["out"].as_str().unwrap().to_owned();
    let mut set = env.cmd("nix-env");
    set.arg("--profile").arg(profile).args(["--set", &out]);
    run(set);
}

fn main() {
    if Command::new("nix").arg("--version").output().is_err() {
        println!("skipped: nix is not installed (scripts/setup-host.sh)");
        return;
    }
    let env = Env::new();
    std::fs::create_dir_all(env.p("bare")).unwrap();
    let bare_profile = env.p("bare/vm");
    // Warm up: the derivation is built once; every round then measures the
    // wrapping, not the build.
    run({
        let mut c = env.miniguest();
        c.args(["install", &env.flake("vm")]);
        c
    });
    bare_install(&env, &bare_profile, false);

    let (mut ours, mut bare) = (Vec::new(), Vec::new());
    let (mut ours_up, mut bare_up) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        ours.push(time(|| {
            let mut c = env.miniguest();
            c.args(["install", "--force", &env.flake("vm")]);
            run(c);
        }));
        bare.push(time(|| bare_install(&env, &bare_profile, false)));
        ours_up.push(time(|| {
            let mut c = env.miniguest();
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
    let target = std::fs::canonicalize(env.p("profiles/vm")).unwrap();
    for i in 0..1000 {
        let name = format!("g{i:04}");
        let gen_link = env.p(&format!("profiles/{name}-1-link"));
        symlink(&target, &gen_link).unwrap();
        symlink(format!("{name}-1-link"), env.p(&format!("profiles/{name}"))).unwrap();
        symlink(
            env.p(&format!("profiles/{name}")),
            env.p(&format!("guests/{name}")),
        )
        .unwrap();
    }
    for args in [&["list"][..], &["list", "--json"]] {
        let rounds: Vec<Duration> = (0..ROUNDS)
            .map(|_| {
                time(|| {
                    let mut c = env.miniguest();
                    c.args(args);
                    run(c);
                })
            })
            .collect();
        let rows = {
            let mut c = env.miniguest();
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
}
