//! `--network`, as the user writes it, into the manifest's typed
//! interfaces (checked as the manifest's are).

use anyhow::{bail, Result};

use crate::contract::{values::IfName, values::NetName, Interface, Link};

/// `none`, `user`, `bridge=BR`, `network=NET`, comma-separated for several.
pub fn parse(spec: &str) -> Result<Vec<Interface>> {
    if spec == "none" {
        return Ok(vec![]);
    }
    spec.split(',')
        .map(|part| {
            let link = match part.split_once('=') {
                None if part == "user" => Link::User(vec![]),
                Some(("bridge", br)) => Link::Bridge(
                    IfName::try_from(br).map_err(|e| anyhow::anyhow!("--network {part:?}: {e}"))?,
                ),
                Some(("network", net)) => Link::Network(
                    NetName::try_from(net)
                        .map_err(|e| anyhow::anyhow!("--network {part:?}: {e}"))?,
                ),
                _ => bail!(
                    "invalid --network {part:?} (expected none, user, bridge=BR or network=NET)"
                ),
            };
            Ok(Interface { link, mac: None })
        })
        .collect()
}

/// User-mode networking: works without any host setup.
pub fn user_mode() -> Vec<Interface> {
    vec![Interface {
        link: Link::User(vec![]),
        mac: None,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_specs() {
        assert!(parse("none").unwrap().is_empty());
        let ifs = parse("user,bridge=br0").unwrap();
        assert_eq!(ifs[0].link, Link::User(vec![]));
        assert_eq!(ifs[1].link, Link::Bridge(IfName::try_from("br0").unwrap()));
        assert!(parse("bridge").is_err());
        assert!(parse("wifi").is_err());
        // The same rule as the manifest's: a bridge name with a line break
        // never reaches a config file.
        let e = format!(
            "{:#}",
            parse("bridge=br0\nlxc.hook.pre-start=x").unwrap_err()
        );
        assert!(e.contains("[A-Za-z0-9_.-]"), "{e}");
    }
}
