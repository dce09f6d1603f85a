//! LXC's container config: `key = value`, one per line. LXC ends a value
//! at the newline and trims white space around it, so a value holding a
//! line break would add a key of the writer's choosing (a
//! `lxc.hook.pre-start` runs as host root). This writer refuses such values
//! instead of hoping every caller checked them.

use std::fmt::Write;

use anyhow::{bail, Result};

#[derive(Default)]
pub struct LxcConfig {
    text: String,
}

impl LxcConfig {
    pub fn comment(&mut self, text: &str) -> Result<()> {
        plain("comment", text)?;
        writeln!(self.text, "# {text}")?;
        Ok(())
    }

    pub fn set(&mut self, key: &str, value: impl std::fmt::Display) -> Result<()> {
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            bail!("LXC config: invalid key {key:?}");
        }
        let value = value.to_string();
        plain(key, &value)?;
        if value.trim() != value {
            bail!("LXC config: {key}: {value:?} has white space LXC would strip");
        }
        writeln!(self.text, "{key} = {value}")?;
        Ok(())
    }

    /// `lxc.mount.entry`, whose fields are fstab-style: white space and
    /// backslashes inside a path are written as octal escapes.
    pub fn mount_entry(&mut self, source: &str, target: &str, options: &str) -> Result<()> {
        self.mount_fs(source, target, "none", options)
    }

    /// A mount of a file system of type `fs_type` (`tmpfs`).
    pub fn mount_fs(
        &mut self,
        source: &str,
        target: &str,
        fs_type: &str,
        options: &str,
    ) -> Result<()> {
        let entry = format!(
            "{} {} {} {} 0 0",
            fstab_field(source)?,
            fstab_field(target)?,
            fstab_field(fs_type)?,
            fstab_field(options)?
        );
        self.set("lxc.mount.entry", entry)
    }

    pub fn finish(self) -> String {
        self.text
    }
}

fn plain(key: &str, value: &str) -> Result<()> {
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        bail!("LXC config: {key}: {value:?} holds the control character {c:?}");
    }
    Ok(())
}

fn fstab_field(field: &str) -> Result<String> {
    plain("lxc.mount.entry", field)?;
    if field.is_empty() {
        bail!("LXC config: lxc.mount.entry: empty field");
    }
    let mut out = String::new();
    for c in field.chars() {
        match c {
            ' ' | '\\' => write!(out, "\\{:03o}", c as u32)?,
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_never_reach_the_file() {
        let mut c = LxcConfig::default();
        assert!(c
            .set("lxc.net.0.hwaddr", "x\nlxc.hook.pre-start = /bin/sh")
            .is_err());
        assert!(c.set("lxc.net.0.link", "br0\r").is_err());
        assert!(c.set("lxc.uts.name", " padded").is_err());
        assert!(c.set("lxc.x\ny", "v").is_err());
        assert!(c.mount_entry("/a\nb", "x", "ro").is_err());
        assert!(c.comment("a\nlxc.hook.start = x").is_err());
        c.mount_entry("/a b\\c", "mnt/x", "ro,bind").unwrap();
        assert_eq!(
            c.finish(),
            "lxc.mount.entry = /a\\040b\\134c mnt/x none ro,bind 0 0\n"
        );
    }
}
