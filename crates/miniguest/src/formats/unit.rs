//! systemd's unit-file syntax, for `.nspawn` settings and service drop-ins:
//! `[Section]` headers and `Key=value` lines. A value ends at the line, so
//! control characters are refused; values whose surrounding white space
//! systemd would strip are refused too. Command lines go through
//! `command_line`, which quotes each word as systemd reads it.

use std::fmt::Write;

use anyhow::{bail, Result};

#[derive(Default)]
pub struct UnitFile {
    text: String,
}

impl UnitFile {
    pub fn comment(&mut self, text: &str) -> Result<()> {
        plain("comment", text)?;
        writeln!(self.text, "# {text}")?;
        Ok(())
    }

    pub fn section(&mut self, name: &str) -> Result<()> {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            bail!("unit file: invalid section {name:?}");
        }
        if !self.text.is_empty() {
            self.text.push('\n');
        }
        writeln!(self.text, "[{name}]")?;
        Ok(())
    }

    pub fn set(&mut self, key: &str, value: impl std::fmt::Display) -> Result<()> {
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            bail!("unit file: invalid key {key:?}");
        }
        let value = value.to_string();
        plain(key, &value)?;
        if value.trim() != value || value.ends_with('\\') {
            bail!("unit file: {key}: {value:?} would not read back as written");
        }
        writeln!(self.text, "{key}={value}")?;
        Ok(())
    }

    pub fn finish(self) -> String {
        self.text
    }
}

fn plain(key: &str, value: &str) -> Result<()> {
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        bail!("unit file: {key}: {value:?} holds the control character {c:?}");
    }
    Ok(())
}

/// An `ExecStart=`-style command line: each word double-quoted, with `\`
/// and `"` escaped, and `%` and `$` doubled so that systemd expands neither
/// a specifier nor a variable.
pub fn command_line(words: &[&str]) -> String {
    words
        .iter()
        .map(|w| {
            let mut q = String::from("\"");
            for c in w.chars() {
                match c {
                    '\\' => q.push_str("\\\\"),
                    '"' => q.push_str("\\\""),
                    '%' => q.push_str("%%"),
                    '$' => q.push_str("$$"),
                    c => q.push(c),
                }
            }
            q.push('"');
            q
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_stay_on_their_line() {
        let mut u = UnitFile::default();
        u.section("Exec").unwrap();
        assert!(u.set("Parameters", "/boot/init\n[Exec]\nBoot=yes").is_err());
        assert!(u.set("Bind", " padded").is_err());
        assert!(u.set("Bind", "ends\\").is_err());
        assert!(u.set("Bad Key", "x").is_err());
        u.set("Boot", "no").unwrap();
        assert_eq!(u.finish(), "[Exec]\nBoot=no\n");
        assert_eq!(
            command_line(&["/bin/sh", "-c", "echo \"$HOME\" 100% \\"]),
            r#""/bin/sh" "-c" "echo \"$$HOME\" 100%% \\""#
        );
    }
}
