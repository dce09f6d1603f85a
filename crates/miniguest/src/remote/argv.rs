//! What the host is told to run: the words the user typed, less the
//! options that chose the host. Nothing is re-spelled, so every option
//! means on the host what it would mean there, paths included.

use std::ffi::OsString;

use anyhow::{anyhow, Result};

/// The options that pick hosts; they take a value.
const HOST_OPTIONS: [&str; 3] = ["--host", "--hosts-file", "--build-host"];

/// `args` (this program's, without its name) less the host options.
/// The last `tail` words are a guest command's (`exec`) and are passed on
/// as they are; so is everything after `--`.
pub fn without_host_options(args: &[String], tail: usize) -> Vec<String> {
    let options_end = args.len().saturating_sub(tail);
    let mut kept = Vec::with_capacity(args.len());
    let mut words = args.iter().enumerate();
    while let Some((i, word)) = words.next() {
        if i >= options_end || word == "--" {
            kept.extend(args[i..].iter().cloned());
            break;
        }
        if HOST_OPTIONS.contains(&word.as_str()) {
            words.next();
            continue;
        }
        if HOST_OPTIONS
            .iter()
            .any(|o| word.strip_prefix(o).is_some_and(|r| r.starts_with('=')))
        {
            continue;
        }
        kept.push(word.clone());
    }
    kept
}

/// This program's arguments, which must be UTF-8 to be sent.
pub fn own_args() -> Result<Vec<String>> {
    std::env::args_os()
        .skip(1)
        .map(|a: OsString| {
            a.into_string()
                .map_err(|a| anyhow!("argument {a:?} is not UTF-8; it cannot be sent to a host"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn host_options_go_the_rest_stays() {
        assert_eq!(
            without_host_options(&words("--host a status --host=b web --json"), 0),
            words("status web --json")
        );
        assert_eq!(
            without_host_options(
                &words("start --hosts-file f --build-host b web --wait=5"),
                0
            ),
            words("start web --wait=5")
        );
    }

    #[test]
    fn a_guest_command_keeps_its_words() {
        assert_eq!(
            without_host_options(&words("exec --host a web ls --host x"), 3),
            words("exec web ls --host x")
        );
        assert_eq!(
            without_host_options(&words("--host a exec web -- env --host=x"), 2),
            words("exec web -- env --host=x")
        );
    }
}
