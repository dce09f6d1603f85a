//! Live values for shell completion (clap_complete's dynamic engine): the
//! installed guests' names, and a guest's generation numbers. The shell
//! runs `miniguest` itself to ask, with `COMPLETE=SHELL` set; see
//! `miniguest completions --help`.

use std::ffi::OsStr;
use std::path::PathBuf;

use clap_complete::engine::CompletionCandidate;

use crate::guest::layout::{Layout, DEFAULT_GUESTS_DIR, DEFAULT_PROFILES_DIR};
use crate::nix::profile::Profile;

/// The words of the command line being completed (after the program's own
/// `--`), to find the directories and the guest they name.
fn words() -> Vec<String> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == "--") {
        Some(i) => args[i + 1..].to_vec(),
        None => args,
    }
}

fn option(words: &[String], long: &str, env: &str, default: &str) -> PathBuf {
    words
        .windows(2)
        .find(|w| w[0] == long)
        .map(|w| PathBuf::from(&w[1]))
        .or_else(|| {
            words
                .iter()
                .find_map(|w| w.strip_prefix(&format!("{long}=")).map(PathBuf::from))
        })
        .or_else(|| std::env::var_os(env).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(default))
}

fn layout(words: &[String]) -> Layout {
    Layout {
        guests_dir: option(
            words,
            "--guests-dir",
            "MINIGUEST_GUESTS_DIR",
            DEFAULT_GUESTS_DIR,
        ),
        profiles_dir: option(
            words,
            "--profiles-dir",
            "MINIGUEST_PROFILES_DIR",
            DEFAULT_PROFILES_DIR,
        ),
    }
}

pub fn guest_names(current: &OsStr) -> Vec<CompletionCandidate> {
    let prefix = current.to_string_lossy();
    layout(&words())
        .listed_names()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.as_str().starts_with(&*prefix))
        .map(|n| CompletionCandidate::new(n.as_str()))
        .collect()
}

/// For `rollback NAME --to`: NAME's generations.
pub fn generation_numbers(current: &OsStr) -> Vec<CompletionCandidate> {
    let words = words();
    let layout = layout(&words);
    let prefix = current.to_string_lossy();
    let Some(name) = words
        .iter()
        .skip_while(|w| *w != "rollback")
        .skip(1)
        .find(|w| !w.starts_with('-') && w.parse::<crate::guest::GuestName>().is_ok())
        .and_then(|w| w.parse::<crate::guest::GuestName>().ok())
    else {
        return vec![];
    };
    let profile_path = layout.profile(&name);
    Profile::new(&profile_path)
        .generations()
        .unwrap_or_default()
        .into_iter()
        .map(|g| g.number.to_string())
        .filter(|n| n.starts_with(&*prefix))
        .map(CompletionCandidate::new)
        .collect()
}
