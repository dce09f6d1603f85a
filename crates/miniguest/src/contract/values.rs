//! The contract's values, each checked once when it is made: a value of one
//! of these types has passed its rule, so no backend, writer or test can
//! hand an unchecked name or path further. The rules' limits and patterns
//! are `nix/lib/contract.nix`'s (`limits`, `patterns`); the contract tests
//! hold these to them.
//!
//! Errors say what is wrong with the value; whoever reads it adds the
//! field's name (serde's path, or the option's).

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::files;

/// The limits of `contract.nix`'s `limits`.
pub mod limits {
    /// A volume's name is its virtio-blk serial, which holds 20 bytes.
    pub const VOLUME_NAME: usize = 20;
    /// A share's tag is a virtio-9p or virtiofs tag, which holds 36 bytes.
    pub const SHARE_TAG: usize = 36;
    /// Linux interface names: IFNAMSIZ - 1.
    pub const BRIDGE: usize = 15;
    pub const NETWORK: usize = 64;
    pub const FS_TYPE: usize = 16;
    /// A credential's name ends a fw_cfg file name, which holds 55 bytes
    /// after `opt/io.systemd.credentials/`'s 27.
    pub const CREDENTIAL_NAME: usize = 28;
}

/// Defines a string newtype whose only constructor is `TryFrom<String>`
/// with the given check; (de)serialized as its string.
macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl TryFrom<String> for $name {
            type Error = String;

            fn try_from(value: String) -> Result<Self, String> {
                let check: fn(&str) -> Result<(), String> = $check;
                check(&value)?;
                Ok($name(value))
            }
        }

        impl TryFrom<&str> for $name {
            type Error = String;

            fn try_from(value: &str) -> Result<Self, String> {
                $name::try_from(value.to_owned())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(value: &str) -> Result<Self, String> {
                $name::try_from(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<Path> for $name {
            fn as_ref(&self) -> &Path {
                Path::new(&self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

/// `patterns.name`: what volume names and share tags are made of.
fn plain_name(value: &str, max: usize) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        return Err(format!(
            "{value:?} must be 1-{max} characters of [A-Za-z0-9_-]"
        ));
    }
    if [files::STORE_TAG, files::BOOT_TAG].contains(&value) {
        return Err(format!("{value:?} is reserved"));
    }
    Ok(())
}

checked_string!(
    /// A share's virtio tag (and the name under which it is mounted).
    Tag,
    |v| plain_name(v, limits::SHARE_TAG)
);

checked_string!(
    /// A volume's name: its disk's virtio serial, its image's and its
    /// directory's file name.
    VolumeName,
    |v| plain_name(v, limits::VOLUME_NAME)
);

checked_string!(
    /// A systemd credential's name (`patterns.credentialName`): a file
    /// name in the guest's credentials directory and the end of a fw_cfg
    /// file name, so no slash, no leading dot, nothing a writer must quote.
    CredentialName,
    |v| {
        let ok = v.len() <= limits::CREDENTIAL_NAME
            && v.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{v:?} is not a credential name (1-{} characters of [A-Za-z0-9._-], starting with a letter or digit)",
                limits::CREDENTIAL_NAME
            ))
        }
    }
);

/// No control characters: they would end a line in a config file or a
/// script, and no legitimate value needs one.
pub fn plain_text(value: &str) -> Result<(), String> {
    match value.chars().find(|c| c.is_control()) {
        Some(c) => Err(format!("{value:?} contains the control character {c:?}")),
        None => Ok(()),
    }
}

checked_string!(
    /// A path inside the guest: absolute, without a `.` or `..` step that
    /// could climb out of a container's root, and not the root itself.
    MountPoint,
    |v| {
        plain_text(v)?;
        if !v.starts_with('/') {
            return Err(format!("{v:?} must be absolute"));
        }
        if v.split('/').any(|part| part == ".." || part == ".") {
            return Err(format!("{v:?} must not contain '.' or '..'"));
        }
        if v.split('/').all(str::is_empty) {
            return Err(format!("{v:?} must not be the guest's root"));
        }
        Ok(())
    }
);

impl MountPoint {
    /// Relative to the guest's root, as LXC's mount entries want it.
    pub fn relative(&self) -> &str {
        self.0.trim_start_matches('/')
    }
}

checked_string!(
    /// A path on the host: absolute and without `..`. (Whether sharing it
    /// is wise is the exposure policy's question.)
    HostPath,
    |v| {
        plain_text(v)?;
        if !v.starts_with('/') {
            return Err(format!("{v:?} must be an absolute host path"));
        }
        if Path::new(v)
            .components()
            .any(|c| c == std::path::Component::ParentDir)
        {
            return Err(format!("{v:?} must not contain '..'"));
        }
        Ok(())
    }
);

checked_string!(
    /// A MAC address, `xx:xx:xx:xx:xx:xx`.
    Mac,
    |v| {
        let parts: Vec<&str> = v.split(':').collect();
        let ok = parts.len() == 6
            && parts
                .iter()
                .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
        if ok {
            Ok(())
        } else {
            Err(format!("{v:?} is not a MAC address (xx:xx:xx:xx:xx:xx)"))
        }
    }
);

/// Bridge and network names reach configuration files and command lines.
fn object_name(value: &str, max: usize) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && !value.starts_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{value:?} must be 1-{max} characters of [A-Za-z0-9_.-], not starting with '-' or '.'"
        ))
    }
}

checked_string!(
    /// A host network interface's name: the bridge an interface attaches
    /// to.
    IfName,
    |v| object_name(v, limits::BRIDGE)
);

checked_string!(
    /// A libvirt network's name.
    NetName,
    |v| object_name(v, limits::NETWORK)
);

checked_string!(
    /// A file system type Miniguest formats a volume with (`mkfs.TYPE`).
    FsType,
    |v| {
        let ok = !v.is_empty()
            && v.len() <= limits::FS_TYPE
            && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{v:?} must be 1-{} characters of [a-z0-9]",
                limits::FS_TYPE
            ))
        }
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_value_refuses_what_its_rule_refuses() {
        assert!(Tag::try_from("data").is_ok());
        assert!(Tag::try_from("a b").unwrap_err().contains("[A-Za-z0-9_-]"));
        assert!(Tag::try_from("boot").unwrap_err().contains("reserved"));
        assert!(VolumeName::try_from("x".repeat(21)).is_err());
        assert!(MountPoint::try_from("/var").is_ok());
        assert!(MountPoint::try_from("//").unwrap_err().contains("root"));
        assert!(MountPoint::try_from("/a/../b").is_err());
        assert!(MountPoint::try_from("var").is_err());
        assert!(HostPath::try_from("/srv/../etc").is_err());
        assert!(HostPath::try_from("/srv/my data").is_ok());
        assert!(Mac::try_from("52:54:00:12:34:56").is_ok());
        assert!(Mac::try_from("52:54:00:12:34:5g").is_err());
        assert!(IfName::try_from("br0").is_ok());
        assert!(IfName::try_from("-br").is_err());
        assert!(IfName::try_from("a".repeat(16)).is_err());
        assert!(NetName::try_from("a".repeat(64)).is_ok());
        assert!(FsType::try_from("ext4").is_ok());
        assert!(FsType::try_from("Ext4").is_err());
    }

    #[test]
    fn a_value_reads_back_only_through_its_rule() {
        let ok: Tag = serde_json::from_str(r#""data""#).unwrap();
        assert_eq!(ok, "data");
        let e = serde_json::from_str::<Tag>(r#""nix-store""#).unwrap_err();
        assert!(e.to_string().contains("reserved"), "{e}");
        assert_eq!(serde_json::to_string(&ok).unwrap(), r#""data""#);
    }
}
