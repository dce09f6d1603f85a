//! Profiles the original Miniguest made with `nix profile install`: a
//! symlink tree whose `manifest.json` says which flake and attribute each
//! element came from. Versions 1 and 2 are what Nix 2.4–2.8 write (a list
//! of elements; v1 names the reference `originalUri`, v2 `originalUrl`);
//! version 3 keys the elements by name. `upgrade` reads the reference from
//! there and takes the guest over, its earlier generations kept.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::nix::installable::Installable;

/// The flake reference and attribute of a `nix profile` profile's only
/// element, or None when the profile has no manifest (not made that way).
pub fn origin(profile: &Path) -> Result<Option<Installable>> {
    let file = profile.join("manifest.json");
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
    };
    parse(&text)
        .map(Some)
        .with_context(|| format!("cannot read the nix profile manifest {}", file.display()))
}

fn parse(text: &str) -> Result<Installable> {
    let manifest: Value = serde_json::from_str(text).context("not valid JSON")?;
    let elements: Vec<&Value> = match (manifest["version"].as_u64(), &manifest["elements"]) {
        (Some(1 | 2), Value::Array(list)) => list.iter().collect(),
        (Some(3), Value::Object(map)) => map.values().collect(),
        (Some(3), Value::Array(list)) => list.iter().collect(),
        (version, _) => bail!("unsupported nix profile manifest (version {version:?})"),
    };
    let active: Vec<&Value> = elements
        .into_iter()
        .filter(|e| e["active"].as_bool().unwrap_or(true))
        .collect();
    let [element] = active.as_slice() else {
        bail!("expected one guest in the profile, found {}", active.len());
    };
    let flake = ["originalUrl", "originalUri", "url", "uri"]
        .iter()
        .find_map(|k| element[k].as_str())
        .context("elements[0]: no flake reference (originalUrl)")?;
    let attribute = element["attrPath"]
        .as_str()
        .context("elements[0]: no attrPath")?;
    Ok(Installable {
        flake: flake.to_owned(),
        attribute: attribute.to_owned(),
        override_inputs: vec![],
        impure: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_manifest_version() {
        let v1 = r#"{"version":1,"elements":[{"active":true,"attrPath":"nixosConfigurations.c.config.system.build.miniguest","originalUri":"git+file:///src/g","uri":"git+file:///src/g?rev=abc","storePaths":["/nix/store/x"]}]}"#;
        let v2 = r#"{"version":2,"elements":[{"active":true,"attrPath":"nixosConfigurations.c.config.system.build.miniguest","originalUrl":"path:/src/g","url":"path:/src/g?narHash=sha256-x","storePaths":["/nix/store/x"],"priority":5}]}"#;
        let v3 = r#"{"version":3,"elements":{"miniguest-c":{"active":true,"attrPath":"nixosConfigurations.c.config.system.build.miniguest","originalUrl":"github:me/g","url":"github:me/g/abc","storePaths":["/nix/store/x"],"priority":5}}}"#;
        for (text, flake) in [
            (v1, "git+file:///src/g"),
            (v2, "path:/src/g"),
            (v3, "github:me/g"),
        ] {
            let i = parse(text).unwrap();
            assert_eq!(i.flake, flake);
            assert_eq!(
                i.attribute,
                "nixosConfigurations.c.config.system.build.miniguest"
            );
        }
        assert!(parse(r#"{"version":9,"elements":[]}"#).is_err());
        assert!(parse(r#"{"version":2,"elements":[]}"#).is_err());
    }
}
