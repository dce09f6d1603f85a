//! Guest names: validated once, at the edge, so that every path, profile
//! and hypervisor object derived from a name is safe to build.
//!
//! One name serves as a libvirt domain, an LXC container, an nspawn machine
//! (systemd's host-name rules) and a NixOS `networking.hostName` (no dots),
//! so the policy is the intersection of those: a DNS label. On top of that a
//! name must stay clear of the files Nix keeps beside a profile.

use std::fmt;
use std::str::FromStr;

/// Longest accepted name, in bytes: a DNS label.
pub const MAX_LEN: usize = 63;

/// The policy in one line, for error messages and documentation.
pub const RULE: &str =
    "1-63 letters, digits and '-', starting and ending with a letter or digit, with no '-<number>-link'";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidName {
    #[error("guest name is empty")]
    Empty,
    #[error("guest name is longer than {MAX_LEN} bytes")]
    TooLong,
    #[error("guest name may contain only letters, digits and '-' (found {0:?})")]
    Character(char),
    #[error("guest name must start and end with a letter or digit")]
    Edge,
    // Nix finds the generations of profile P by parsing `P-<n>-link…`:
    // guest `a-5-linkx` (and every generation link of it) would count as
    // generation 5 of guest `a`.
    #[error("guest name must not contain '-<number>-link' (Nix reads it as a profile generation)")]
    GenerationLike,
}

/// A guest name that is safe as a file name, a Nix profile name, a host name
/// and every hypervisor's object name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GuestName(String);

impl GuestName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for GuestName {
    type Err = InvalidName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(InvalidName::Empty);
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(InvalidName::Character(c));
        }
        if s.len() > MAX_LEN {
            return Err(InvalidName::TooLong);
        }
        if s.starts_with('-') || s.ends_with('-') {
            return Err(InvalidName::Edge);
        }
        if contains_generation_marker(s) {
            return Err(InvalidName::GenerationLike);
        }
        Ok(GuestName(s.to_owned()))
    }
}

/// Whether `s` contains `-<digits>-link`, the shape Nix parses as a
/// generation of the profile named by what precedes it.
fn contains_generation_marker(s: &str) -> bool {
    let bytes = s.as_bytes();
    s.match_indices("-link").any(|(end, _)| {
        let digits = bytes[..end]
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_digit())
            .count();
        digits > 0 && end > digits && bytes[end - digits - 1] == b'-'
    })
}

impl fmt::Display for GuestName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_host_names() {
        for ok in [
            "web",
            "db1",
            "x-y",
            "A9",
            "a-link",
            "a-x5-link",
            "a5-link",
            "7",
        ] {
            assert!(ok.parse::<GuestName>().is_ok(), "{ok} should be accepted");
        }
        assert!("a".repeat(MAX_LEN).parse::<GuestName>().is_ok());
    }

    #[test]
    fn refuses_every_bad_class() {
        let cases = [
            ("", InvalidName::Empty),
            ("a/b", InvalidName::Character('/')),
            ("a..b", InvalidName::Character('.')),
            ("web.1", InvalidName::Character('.')),
            ("b.lock", InvalidName::Character('.')),
            ("db_1", InvalidName::Character('_')),
            ("-rf", InvalidName::Edge),
            ("web-", InvalidName::Edge),
            ("a b", InvalidName::Character(' ')),
            ("a\nb", InvalidName::Character('\n')),
            ("it's", InvalidName::Character('\'')),
            ("Ünïcode", InvalidName::Character('Ü')),
            ("web-3-link", InvalidName::GenerationLike),
            ("a-5-linkx", InvalidName::GenerationLike),
            ("x-a-12-link-y", InvalidName::GenerationLike),
        ];
        for (name, want) in cases {
            assert_eq!(name.parse::<GuestName>(), Err(want), "{name:?}");
        }
        assert_eq!(
            "a".repeat(MAX_LEN + 1).parse::<GuestName>(),
            Err(InvalidName::TooLong)
        );
    }
}
