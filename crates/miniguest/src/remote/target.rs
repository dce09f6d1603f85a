//! Where a command acts: this machine, or `[USER@]HOST` as ssh reads it
//! (an alias of the user's ssh configuration is a host too).

use std::fmt;
use std::str::FromStr;

/// The word that names this machine among `--host`s.
pub const LOCAL: &str = "local";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// This machine, with no ssh.
    Local,
    /// Another host, reached with ssh and Nix's `ssh-ng://` store.
    Ssh { user: Option<String>, host: String },
}

#[derive(Debug, thiserror::Error)]
#[error("--host {0:?}: expected [USER@]HOST (letters, digits and . - _ : [ ] %), or `local`")]
pub struct BadTarget(String);

fn word_ok(word: &str, extra: &[u8]) -> bool {
    !word.is_empty()
        && !word.starts_with('-')
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b) || extra.contains(&b))
}

impl FromStr for Target {
    type Err = BadTarget;

    fn from_str(s: &str) -> Result<Self, BadTarget> {
        if s == LOCAL {
            return Ok(Target::Local);
        }
        let (user, host) = match s.split_once('@') {
            Some((user, host)) => (Some(user), host),
            None => (None, s),
        };
        // Neither may be read by ssh as an option, nor carry a second word
        // or a path into ssh's or Nix's command lines.
        if !word_ok(host, b":[]%") || user.is_some_and(|u| !word_ok(u, b"")) {
            return Err(BadTarget(s.to_owned()));
        }
        Ok(Target::Ssh {
            user: user.map(str::to_owned),
            host: host.to_owned(),
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Local => f.write_str(LOCAL),
            Target::Ssh {
                user: Some(user),
                host,
            } => write!(f, "{user}@{host}"),
            Target::Ssh { user: None, host } => f.write_str(host),
        }
    }
}

impl Target {
    /// Nix's store on that host, reached through ssh.
    pub fn store_uri(&self) -> Option<String> {
        match self {
            Target::Local => None,
            Target::Ssh { .. } => Some(format!("ssh-ng://{self}")),
        }
    }
}

/// The hosts named in a hosts file: one a line, `#` comments and blank
/// lines skipped.
pub fn parse_hosts_file(text: &str) -> Result<Vec<Target>, BadTarget> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::parse)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_user_and_host() {
        assert_eq!(
            "root@10.0.0.2".parse::<Target>().unwrap(),
            Target::Ssh {
                user: Some("root".into()),
                host: "10.0.0.2".into()
            }
        );
        assert_eq!("local".parse::<Target>().unwrap(), Target::Local);
        let t: Target = "box.example.org".parse().unwrap();
        assert_eq!(t.store_uri().unwrap(), "ssh-ng://box.example.org");
        assert!("[fe80::1%eth0]".parse::<Target>().is_ok());
    }

    #[test]
    fn refuses_what_ssh_or_a_shell_would_read_otherwise() {
        for bad in [
            "",
            "-oProxyCommand=touch /tmp/x",
            "a b",
            "root@",
            "@host",
            "-l@host",
            "host;reboot",
            "host/path",
            "u@h@x",
            "h\n",
            "$(id)",
        ] {
            let e = bad.parse::<Target>().unwrap_err().to_string();
            assert!(e.starts_with("--host "), "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_hosts_file_skips_comments() {
        let hosts = parse_hosts_file("# rack\nroot@a\n\n b # the laptop\nlocal\n").unwrap();
        assert_eq!(hosts.len(), 3);
        assert_eq!(hosts[1].to_string(), "b");
        assert!(parse_hosts_file("ok\n-bad\n").is_err());
    }
}
