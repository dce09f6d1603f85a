//! `FLAKEREF[#ATTR]` as the user types it, resolved to the full installable
//! that builds a guest output.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// Where a guest's output lives inside `nixosConfigurations.NAME`.
pub const OUTPUT_ATTR: &str = "config.system.build.miniguest";
const CONFIGS: &str = "nixosConfigurations";

/// A resolved guest source: the flake reference (local paths made absolute,
/// so it still means the same thing from another working directory) and the
/// full attribute path of the guest output.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Installable {
    pub flake: String,
    pub attribute: String,
    /// `--override-input INPUT FLAKEREF` pairs, repeated on every upgrade.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub override_inputs: Vec<(String, String)>,
    /// `--impure`, repeated on every upgrade.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub impure: bool,
}

impl Installable {
    pub fn to_arg(&self) -> String {
        format!("{}#{}", self.flake, self.attribute)
    }

    /// The Nix options recorded with the guest (`--override-input`,
    /// `--impure`), for every command that evaluates it.
    pub fn recorded_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        for (input, flake) in &self.override_inputs {
            args.extend(["--override-input".to_owned(), input.clone(), flake.clone()]);
        }
        if self.impure {
            args.push("--impure".into());
        }
        args
    }
}

/// The guest name an attribute implies, if it implies one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub installable: Installable,
    pub implied_name: Option<String>,
}

pub fn parse(input: &str, cwd: &Path) -> Result<Parsed> {
    let (flake, attr) = match input.split_once('#') {
        Some((flake, attr)) => (flake, Some(attr)),
        None => (input, None),
    };
    // Nix would read it as an option.
    if flake.starts_with('-') {
        bail!("flake reference {flake:?} must not start with '-'");
    }
    if flake.is_empty() {
        bail!(
            "missing flake reference in {input:?} (use '.#NAME' for the flake in this directory)"
        );
    }
    let flake = absolutize(flake, cwd)?;
    let (attribute, implied_name) = match attr {
        None | Some("") => (config_output("default"), Some("default".to_owned())),
        Some(attr) => {
            let segments = split_attr_path(attr)?;
            if segments.len() == 1 {
                (config_output(&segments[0]), Some(segments[0].clone()))
            } else if segments.len() == 2 && segments[0] == CONFIGS {
                // The original Miniguest took the configuration itself.
                (config_output(&segments[1]), Some(segments[1].clone()))
            } else {
                let implied = match segments.as_slice() {
                    [first, name, ..] if first == CONFIGS => Some(name.clone()),
                    _ => None,
                };
                (attr.to_owned(), implied)
            }
        }
    };
    Ok(Parsed {
        installable: Installable {
            flake,
            attribute,
            override_inputs: vec![],
            impure: false,
        },
        implied_name,
    })
}

fn config_output(name: &str) -> String {
    format!("{CONFIGS}.{}.{OUTPUT_ATTR}", quote_attr(name))
}

/// Quotes an attribute name for a Nix attribute path when it is not a plain
/// identifier.
pub(crate) fn quote_attr(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '\''));
    if plain {
        name.to_owned()
    } else {
        let escaped = name
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace("${", "\\${");
        format!("\"{escaped}\"")
    }
}

/// Splits `a."b.c".d` into `[a, b.c, d]`.
pub(crate) fn split_attr_path(path: &str) -> Result<Vec<String>> {
    let mut segments = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' if quoted => current.extend(chars.next()),
            '.' if !quoted => segments.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    if quoted {
        bail!("unterminated quote in attribute path {path:?}");
    }
    segments.push(current);
    if segments.iter().any(String::is_empty) {
        bail!("empty component in attribute path {path:?}");
    }
    Ok(segments)
}

fn absolutize(flake: &str, cwd: &Path) -> Result<String> {
    let (scheme, rest) = match flake.strip_prefix("path:") {
        Some(rest) => ("path:", rest),
        None => ("", flake),
    };
    let is_local = rest.starts_with('.') || rest.starts_with('/') || !scheme.is_empty();
    if !is_local || rest.contains(':') {
        return Ok(flake.to_owned());
    }
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let joined = cwd.join(path);
    let absolute = joined
        .canonicalize()
        .with_context(|| format!("flake directory {} does not exist", joined.display()))?;
    let mut out = format!("{scheme}{}", absolute.display());
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(input: &str) -> Parsed {
        parse(input, Path::new("/")).unwrap()
    }

    #[test]
    fn short_attribute_expands_to_the_guest_output() {
        let parsed = p("github:me/guests#web");
        assert_eq!(parsed.installable.flake, "github:me/guests");
        assert_eq!(
            parsed.installable.attribute,
            "nixosConfigurations.web.config.system.build.miniguest"
        );
        assert_eq!(parsed.implied_name.as_deref(), Some("web"));
    }

    #[test]
    fn a_configuration_means_its_guest_output() {
        let parsed = p("github:me/guests#nixosConfigurations.web");
        assert_eq!(
            parsed.installable.attribute,
            "nixosConfigurations.web.config.system.build.miniguest"
        );
        assert_eq!(parsed.implied_name.as_deref(), Some("web"));
    }

    #[test]
    fn no_attribute_means_default() {
        let parsed = p("github:me/guests");
        assert_eq!(parsed.implied_name.as_deref(), Some("default"));
        assert!(parsed
            .installable
            .attribute
            .starts_with("nixosConfigurations.default."));
    }

    #[test]
    fn full_attribute_path_is_kept_and_names_the_configuration() {
        let parsed = p("github:me/g#nixosConfigurations.\"my.vm\".config.system.build.miniguest");
        assert_eq!(parsed.implied_name.as_deref(), Some("my.vm"));
        let other = p("github:me/g#packages.x86_64-linux.guest");
        assert_eq!(other.implied_name, None);
        assert_eq!(other.installable.attribute, "packages.x86_64-linux.guest");
    }

    #[test]
    fn odd_names_are_quoted_in_the_attribute_path() {
        let parsed = p("github:me/g#1st");
        assert_eq!(
            parsed.installable.attribute,
            "nixosConfigurations.\"1st\".config.system.build.miniguest"
        );
    }

    #[test]
    fn local_paths_become_absolute() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let real = dir.path().canonicalize().unwrap();
        let parsed = parse("./sub#a", dir.path()).unwrap();
        assert_eq!(parsed.installable.flake, format!("{}/sub", real.display()));
        let parsed = parse("path:.?dir=x#a", dir.path()).unwrap();
        assert_eq!(
            parsed.installable.flake,
            format!("path:{}?dir=x", real.display())
        );
        assert!(parse("./missing#a", dir.path()).is_err());
    }

    #[test]
    fn malformed_attribute_paths_are_refused() {
        assert!(parse("x#a..b", Path::new("/")).is_err());
        assert!(parse("x#\"open", Path::new("/")).is_err());
        assert!(parse("#a", Path::new("/")).is_err());
        assert!(parse("--impure#a", Path::new("/")).is_err());
    }
}
