//! Writing and removing the files Miniguest owns, so that a reader
//! (Miniguest, lxc-start, systemd, libvirtd, Nix's garbage collector) sees a
//! file's old contents or its new ones, never a torn write, and a removal
//! of what is already gone is no error. Every write of a file that another
//! program reads goes through here.

use std::io;
use std::path::Path;

use anyhow::{Context, Result};

/// Writes a file whole: to a temporary file beside it (mode 0600), then
/// renamed into place.
pub fn replace_file(path: &Path, contents: &[u8]) -> Result<()> {
    replace_file_with_mode(path, contents, 0o600)
}

/// `replace_file` with the file's mode given.
pub fn replace_file_with_mode(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().context("a file path has a parent")?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(contents)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// `replace_file` in a directory made first if need be.
pub fn write_file(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = path.parent().context("a file path has a parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    replace_file(path, contents)
}

/// A JSON record, replaced whole.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    replace_file(path, &bytes)
}

/// Points the link at `target`, replacing what was there in one rename.
pub fn replace_symlink(link: &Path, target: &Path) -> Result<()> {
    let dir = link.parent().context("a link path has a parent")?;
    let name = link.file_name().context("a link has a name")?;
    let tmp = dir.join(format!(".{}.new", name.to_string_lossy()));
    remove_if_exists(&tmp)?;
    std::os::unix::fs::symlink(target, &tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    std::fs::rename(&tmp, link).with_context(|| format!("cannot create {}", link.display()))
}

pub fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

/// Reads a JSON record; None when there is none.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("corrupt record {}", path.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaced_files_and_links_hold_the_new_contents() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("sub/f");
        write_file(&f, b"one").unwrap();
        replace_file_with_mode(&f, b"two", 0o755).unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"two");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(f.metadata().unwrap().permissions().mode() & 0o777, 0o755);
        let link = dir.path().join("l");
        replace_symlink(&link, Path::new("/a")).unwrap();
        replace_symlink(&link, Path::new("/b")).unwrap();
        assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("/b"));
        remove_if_exists(&link).unwrap();
        remove_if_exists(&link).unwrap();
        assert_eq!(read_json::<u32>(&link).unwrap(), None);
    }
}
