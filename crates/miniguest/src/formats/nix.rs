//! Nix expressions Miniguest writes (the function `upgrade` applies to a
//! flake's outputs): every string goes in as a quoted Nix string literal.

/// A Nix string literal meaning exactly `s`.
pub fn string(s: &str) -> String {
    let mut out = String::from("\"");
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // `${` would start an interpolation.
            '$' if chars.peek() == Some(&'{') => out.push_str("\\$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `[ "a" "b" ]`
pub fn string_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let words: Vec<String> = items.into_iter().map(string).collect();
    format!("[ {} ]", words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_mean_themselves_to_nix() {
        let nasty = [
            "plain",
            "a\"b",
            "back\\slash",
            "${builtins.abort \"x\"}",
            "$x",
            "line\nbreak",
            "tab\tcr\r",
        ];
        let expr = string_list(nasty);
        let Ok(out) = std::process::Command::new("nix-instantiate")
            .args(["--eval", "--strict", "--json", "--expr", &expr])
            .output()
        else {
            eprintln!("skipped: nix-instantiate is not installed");
            return;
        };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let back: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(back, nasty);
    }
}
