//! Quoting for the commands Miniguest prints, so that any guest name or path
//! pastes safely into a POSIX shell.

use std::borrow::Cow;

pub fn quote(word: &str) -> Cow<'_, str> {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@%+=:,./_-".contains(&b));
    if plain {
        Cow::Borrowed(word)
    } else {
        Cow::Owned(format!("'{}'", word.replace('\'', r"'\''")))
    }
}

/// Joins argv into one shell line, as ssh hands a remote shell a command.
pub fn join_line(argv: &[String]) -> String {
    argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

/// Joins argv into one shell line; long commands are split over lines with
/// a backslash before each option, as people write them by hand.
pub fn join(argv: &[String]) -> String {
    let mut out = String::new();
    for (i, arg) in argv.iter().enumerate() {
        if i > 0 {
            out.push_str(if arg.starts_with("--") && argv.len() > 4 {
                " \\\n  "
            } else {
                " "
            });
        }
        out.push_str(&quote(arg));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(quote("/etc/miniguests/web"), "/etc/miniguests/web");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$(rm -rf ~)"), "'$(rm -rf ~)'");
    }

    #[test]
    fn quoted_words_survive_a_real_shell() {
        let nasty = [
            "it's",
            "$(touch /tmp/x)",
            "a\"b",
            "`id`",
            "x;y|z&",
            "*",
            "~root",
            "ü\\n",
        ];
        let argv: Vec<String> = std::iter::once("printf".to_string())
            .chain(std::iter::once("%s\\n".to_string()))
            .chain(nasty.iter().map(|s| s.to_string()))
            .collect();
        let out = std::process::Command::new("sh")
            .args(["-c", &join(&argv)])
            .output()
            .unwrap();
        let printed = String::from_utf8(out.stdout).unwrap();
        assert_eq!(printed.lines().collect::<Vec<_>>(), nasty);
    }
}
