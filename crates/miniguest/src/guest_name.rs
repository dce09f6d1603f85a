//! Guest names: validated once, at the edge, so that every path, profile
//! and hypervisor object derived from a name is safe to build.

use std::fmt;
use std::str::FromStr;

/// Longest accepted name, in bytes. Keeps `NAME-NNNN-link` and hypervisor
/// object names well inside every filesystem's and libvirt's limits.
pub const MAX_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidName {
    #[error("guest name is empty")]
    Empty,
    #[error("guest name is longer than {MAX_LEN} bytes")]
    TooLong,
    #[error("guest name must not contain '/'")]
    Slash,
    #[error("guest name must not contain '..'")]
    DotDot,
    #[error("guest name must not start with '-'")]
    LeadingDash,
    #[error("guest name must not start with '.'")]
    LeadingDot,
    #[error("guest name must not contain whitespace")]
    Whitespace,
    #[error("guest name must not contain control characters")]
    Control,
    // Nix names generation links `PROFILE-N-link`; a guest called `web-3-link`
    // would collide with generation 3 of guest `web`.
    #[error("guest name must not end in '-<number>-link' (reserved for Nix generations)")]
    GenerationLike,
}

/// A guest name that is safe to use as a file name, a Nix profile name and a
/// hypervisor object name. It may still contain shell metacharacters: every
/// command the tool prints quotes it.
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
        if s.len() > MAX_LEN {
            return Err(InvalidName::TooLong);
        }
        if s.contains('/') {
            return Err(InvalidName::Slash);
        }
        if s.contains("..") {
            return Err(InvalidName::DotDot);
        }
        if s.starts_with('-') {
            return Err(InvalidName::LeadingDash);
        }
        if s.starts_with('.') {
            return Err(InvalidName::LeadingDot);
        }
        if s.chars().any(char::is_whitespace) {
            return Err(InvalidName::Whitespace);
        }
        if s.chars().any(char::is_control) {
            return Err(InvalidName::Control);
        }
        if looks_like_generation_link(s) {
            return Err(InvalidName::GenerationLike);
        }
        Ok(GuestName(s.to_owned()))
    }
}

fn looks_like_generation_link(s: &str) -> bool {
    let Some(rest) = s.strip_suffix("-link") else {
        return false;
    };
    match rest.rsplit_once('-') {
        Some((_, digits)) => !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
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
    fn accepts_ordinary_and_odd_but_safe_names() {
        for ok in [
            "web",
            "db_1",
            "a.b",
            "x-y",
            "Ünïcode",
            "it's$(odd)",
            "a-link",
            "a-1-linkx",
        ] {
            assert!(ok.parse::<GuestName>().is_ok(), "{ok} should be accepted");
        }
        assert!("a".repeat(MAX_LEN).parse::<GuestName>().is_ok());
    }

    #[test]
    fn refuses_every_bad_class() {
        let cases = [
            ("", InvalidName::Empty),
            ("a/b", InvalidName::Slash),
            ("/abs", InvalidName::Slash),
            ("a..b", InvalidName::DotDot),
            ("..", InvalidName::DotDot),
            ("-rf", InvalidName::LeadingDash),
            (".hidden", InvalidName::LeadingDot),
            ("a b", InvalidName::Whitespace),
            ("a\tb", InvalidName::Whitespace),
            ("a\u{a0}b", InvalidName::Whitespace),
            ("a\u{7}b", InvalidName::Control),
            ("a\u{1b}[31m", InvalidName::Control),
            ("web-3-link", InvalidName::GenerationLike),
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
