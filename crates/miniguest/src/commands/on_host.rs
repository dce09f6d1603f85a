//! `--host`: the command carried to other hosts. What needs Nix's
//! evaluator (install, upgrade) is evaluated and built here, its closure
//! copied with Nix's remote store; everything else, and the install or
//! upgrade itself, is this same program run there over one ssh
//! connection, so every check it makes here it makes there.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use anyhow::{bail, Context, Result};

use super::ExitStatus;
use crate::cli::{Cli, Command, InstallArgs, UpgradeArgs};
use crate::nix::installable::Installable;
use crate::nix::store_path::StorePath;
use crate::remote::{argv, program, Session, Target};

/// The hosts the command names: `--host`s, then a hosts file's.
pub fn hosts(cli: &Cli) -> Result<Vec<Target>> {
    let mut hosts = cli
        .host
        .iter()
        .map(|h| h.parse())
        .collect::<Result<Vec<Target>, _>>()?;
    if let Some(file) = &cli.hosts_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("--hosts-file {}", file.display()))?;
        hosts.extend(crate::remote::target::parse_hosts_file(&text)?);
    }
    Ok(hosts)
}

pub fn run(cli: Cli, hosts: Vec<Target>) -> Result<()> {
    let args = argv::own_args()?;
    let several = hosts.len() > 1;
    let builder = match &cli.build_host {
        None => None,
        Some(host) => match (host.parse::<Target>()?, &cli.command) {
            (Target::Local, _) => None,
            (target, Command::Install(_) | Command::Upgrade(_)) => Some(Session::open(&target)?),
            _ => bail!("--build-host: only install and upgrade build"),
        },
    };
    let builder = builder.as_ref();
    match &cli.command {
        Command::Status(_) | Command::List(_) if several => fan_out(&hosts, &args),
        Command::Upgrade(upgrade) => upgrade_on(&hosts, builder, upgrade, &args),
        Command::Run(_) => bail!(
            "--host: run keeps QEMU in this terminal on this machine; define the guest there (create --define) and start it"
        ),
        _ if several => bail!(
            "--host: {} hosts given; only status, list and upgrade act on several",
            hosts.len()
        ),
        Command::Install(install) => install_on(&hosts[0], builder, install, &args),
        Command::Exec(exec) => forward(
            &hosts[0],
            argv::without_host_options(&args, exec.command.len()),
            std::io::stdin().is_terminal(),
        ),
        Command::Console(_) => forward(&hosts[0], argv::without_host_options(&args, 0), true),
        Command::Status(_) | Command::List(_) | Command::Generations(_) => {
            forward(&hosts[0], argv::without_host_options(&args, 0), false)
        }
        // What changes the host runs to its end there, connected or not.
        _ => {
            let (session, program) = connect(&hosts[0])?;
            let argv = with_program(program, argv::without_host_options(&args, 0));
            exit_with(session.run_to_the_end(&argv)?)
        }
    }
}

/// A session on `target` and the path of this program there, copied
/// into its store if it lacks it, in one copy with `also`.
fn connect_with(target: &Target, also: &[&StorePath]) -> Result<(Session, String)> {
    let session = Session::open(target)?;
    let program = program_on(&session, also)?;
    Ok((session, program))
}

/// This program's path on the session's host, copied there (with `also`)
/// if it lacks it.
fn program_on(session: &Session, also: &[&StorePath]) -> Result<String> {
    let executable = match session.target() {
        Target::Local => std::env::current_exe().context("cannot find this program")?,
        Target::Ssh { .. } => {
            let own = program::own()?;
            let mut paths = vec![&own.package];
            paths.extend_from_slice(also);
            session.copy(&paths, also.is_empty())?;
            own.executable
        }
    };
    Ok(executable.to_string_lossy().into_owned())
}

fn connect(target: &Target) -> Result<(Session, String)> {
    connect_with(target, &[])
}

fn with_program(program: String, rest: Vec<String>) -> Vec<String> {
    std::iter::once(program).chain(rest).collect()
}

/// Inserts `words` before a `--` (whose words are Nix's), else at the end.
fn insert_options(mut args: Vec<String>, words: &[String]) -> Vec<String> {
    let at = args.iter().position(|w| w == "--").unwrap_or(args.len());
    args.splice(at..at, words.iter().cloned());
    args
}

fn exit_with(code: i32) -> Result<()> {
    match code {
        0 => Ok(()),
        code => Err(ExitStatus(code).into()),
    }
}

fn forward(target: &Target, args: Vec<String>, tty: bool) -> Result<()> {
    let (session, program) = connect(target)?;
    exit_with(session.run(&with_program(program, args), tty)?)
}

/// Built here (or on the build host), sent with its closure, installed
/// there with the origin it was built from.
fn install_on(
    target: &Target,
    builder: Option<&Session>,
    install: &InstallArgs,
    args: &[String],
) -> Result<()> {
    let (installable, name) = super::install::resolve(install)?;
    let (session, program) = match builder {
        // Built here first: a guest that fails to build never connects.
        None => {
            let out = super::install::build(&installable, install)?;
            let (session, program) = connect_with(target, &[&out])?;
            (session, (program, out))
        }
        // Built there, copied from there to the target.
        Some(builder) => {
            let session = Session::open(target)?;
            let nix_args = crate::nix::NixArgs {
                passed: install.nix.passed(),
                refresh: install.nix.refresh,
            };
            let out = crate::remote::build_host::build(builder, &installable, &nix_args)?;
            session.copy_from(builder, &[&out])?;
            let program = program_on(&session, &[])?;
            (session, (program, out))
        }
    };
    let (program, out) = program;
    let mut extra = vec![
        "--built".to_owned(),
        out.to_string(),
        "--origin".to_owned(),
        serde_json::to_string(&installable)?,
    ];
    if install.name.is_none() {
        extra.extend(["--name".to_owned(), name.to_string()]);
    }
    let args = insert_options(argv::without_host_options(args, 0), &extra);
    exit_with(session.run_to_the_end(&with_program(program, args))?)
}

/// Each host's guests' origins read there, each origin built once here
/// (for every host), each host's outputs sent in one copy, then each host
/// upgrades its guests to them. A host that fails is reported; the others
/// go on.
fn upgrade_on(
    hosts: &[Target],
    builder: Option<&Session>,
    upgrade: &UpgradeArgs,
    args: &[String],
) -> Result<()> {
    let nix_args = crate::nix::NixArgs {
        passed: upgrade.nix.passed(),
        refresh: true,
    };
    let mut built: BTreeMap<Installable, StorePath> = BTreeMap::new();
    let mut failed = 0;
    for target in hosts {
        let result = (|| -> Result<i32> {
            let (session, program) = connect(target)?;
            let stripped = argv::without_host_options(args, 0);
            let ask = insert_options(stripped.clone(), &["--print-origins".to_owned()]);
            let (code, printed) = session.output(&with_program(program.clone(), ask))?;
            if code != 0 {
                return Ok(code);
            }
            let origins: BTreeMap<String, Installable> =
                serde_json::from_slice(&printed).context("unexpected answer to --print-origins")?;
            let mut pairs = Vec::new();
            for (name, origin) in origins {
                let out = match built.get(&origin) {
                    Some(out) => out.clone(),
                    None => {
                        let out = match builder {
                            None => crate::nix::build(&origin, &nix_args)?,
                            Some(b) => crate::remote::build_host::build(b, &origin, &nix_args)?,
                        };
                        built.insert(origin, out.clone());
                        out
                    }
                };
                pairs.push((name, out));
            }
            let outs: Vec<&StorePath> = pairs.iter().map(|(_, out)| out).collect();
            match builder {
                None => session.copy(&outs, false)?,
                Some(b) => session.copy_from(b, &outs)?,
            }
            let mut extra = Vec::new();
            for (name, out) in &pairs {
                extra.extend(["--built".to_owned(), format!("{name}={out}")]);
            }
            let apply = insert_options(stripped, &extra);
            session.run_to_the_end(&with_program(program, apply))
        })();
        match result {
            Ok(0) => {}
            Ok(code) if hosts.len() == 1 => return exit_with(code),
            Ok(_) => failed += 1,
            Err(e) if hosts.len() == 1 => return Err(e),
            Err(e) => {
                eprintln!("error: {e:#}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} hosts failed to upgrade", hosts.len());
    }
    Ok(())
}

/// `status` or `list` of several hosts: each asked for JSON, each row
/// told its host. A host that cannot answer is one line on stderr; the
/// others answer.
fn fan_out(hosts: &[Target], args: &[String]) -> Result<()> {
    let mut stripped = argv::without_host_options(args, 0);
    let json = stripped.iter().any(|w| w == "--json");
    if !json {
        stripped.push("--json".to_owned());
    }
    // Asked at once: the answer takes as long as the slowest host.
    let answers: Vec<Result<Vec<Row>>> = std::thread::scope(|scope| {
        let asking: Vec<_> = hosts
            .iter()
            .map(|target| scope.spawn(|| ask(target, &stripped)))
            .collect();
        asking
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a host's thread panicked")))
            })
            .collect()
    });
    let mut rows = Vec::new();
    let mut failed = 0;
    for (target, answer) in hosts.iter().zip(answers) {
        match answer {
            Ok(host_rows) => {
                for mut row in host_rows {
                    row.insert("host".into(), target.to_string().into());
                    rows.push(row);
                }
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                failed += 1;
            }
        }
    }
    if json {
        super::print_json(&rows)?;
    } else {
        print_table(&rows);
    }
    if failed > 0 {
        // Each was named on its own line already.
        bail!("{failed} of {} hosts did not answer", hosts.len());
    }
    Ok(())
}

type Row = serde_json::Map<String, serde_json::Value>;

/// One host's rows, from its `--json` answer.
fn ask(target: &Target, args: &[String]) -> Result<Vec<Row>> {
    let (session, program) = connect(target)?;
    let (code, printed) = session.output(&with_program(program, args.to_vec()))?;
    if code != 0 {
        bail!("host {target}: miniguest exited with status {code}");
    }
    serde_json::from_slice(&printed).with_context(|| format!("host {target}: unexpected answer"))
}

/// The rows as a table, the host first: the columns every row has, in
/// the order the first row gives them.
fn print_table(rows: &[Row]) {
    let Some(first) = rows.first() else {
        println!("HOST NAME");
        return;
    };
    let mut columns: Vec<&str> = vec!["host"];
    columns.extend(first.keys().map(String::as_str).filter(|k| *k != "host"));
    let cell = |row: &Row, key: &str| match row.get(key) {
        None | Some(serde_json::Value::Null) => "-".to_owned(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Array(a)) if a.is_empty() => "-".to_owned(),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    };
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|row| columns.iter().map(|c| cell(row, c)).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            table
                .iter()
                .map(|r| r[i].len())
                .max()
                .unwrap_or(0)
                .max(c.len())
        })
        .collect();
    let line = |words: Vec<String>| {
        let padded: Vec<String> = words
            .iter()
            .zip(&widths)
            .map(|(w, n)| format!("{w:<n$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(columns.iter().map(|c| c.to_uppercase()).collect());
    for row in table {
        line(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_go_before_nix_words() {
        let args: Vec<String> = ["install", ".#web", "--", "--keep-going"]
            .map(String::from)
            .into();
        assert_eq!(
            insert_options(args, &["--built".into(), "/nix/store/x".into()]),
            [
                "install",
                ".#web",
                "--built",
                "/nix/store/x",
                "--",
                "--keep-going"
            ]
        );
    }
}
