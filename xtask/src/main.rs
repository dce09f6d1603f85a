//! Release helpers: `cargo xtask dist DIR` writes the man page and shell
//! completions that packages install.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap_complete::Shell;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [cmd, dir] if cmd == "dist" => dist(PathBuf::from(dir)),
        _ => bail!("usage: cargo xtask dist DIR"),
    }
}

fn dist(dir: PathBuf) -> Result<()> {
    let man = dir.join("man/man1");
    let completions = dir.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    std::fs::write(man.join("miniguest.1"), miniguest::cli::man_page()?)?;
    for (shell, file) in [
        (Shell::Bash, "miniguest.bash"),
        (Shell::Zsh, "_miniguest"),
        (Shell::Fish, "miniguest.fish"),
    ] {
        std::fs::write(completions.join(file), miniguest::cli::completions(shell))
            .with_context(|| format!("cannot write {file}"))?;
    }
    println!("wrote {} and {}", man.display(), completions.display());
    Ok(())
}
