//! virtiofsd, the daemon that serves a virtiofs share to QEMU: which one
//! to run, and the shared directory among its arguments (which
//! `miniguest-virtiofsd` makes read-only before running the real one).

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::backend::host::find_program;
use crate::backend::spec::Mount;
use crate::backend::GuestSpec;

/// Where Debian, Fedora and QEMU's own packages put it, when not in PATH.
pub fn binary() -> Result<PathBuf> {
    find_program(
        "virtiofsd",
        &[
            "/usr/lib/qemu/virtiofsd",
            "/usr/libexec/virtiofsd",
            "/usr/lib/virtiofsd",
        ],
    )
    .context(NOT_FOUND)
}

const NOT_FOUND: &str = "virtiofsd not found (install QEMU's or the standalone virtiofsd)";

/// The host's virtiofsd, for a writable share.
pub fn writable_program(spec: &GuestSpec) -> Result<PathBuf> {
    spec.virtiofsd.clone().context(NOT_FOUND)
}

/// `miniguest-virtiofsd`, which keeps read-only shares read-only.
pub fn read_only_program(spec: &GuestSpec) -> Result<PathBuf> {
    spec.read_only_virtiofsd.clone().context(
        "miniguest-virtiofsd is not installed beside miniguest; it keeps virtiofs shares read-only",
    )
}

/// virtiofsd for one mount: read-only ones through `miniguest-virtiofsd`.
pub fn for_mount(spec: &GuestSpec, mount: &Mount) -> Result<PathBuf> {
    if mount.read_only {
        read_only_program(spec)
    } else {
        writable_program(spec)
    }
}

/// The shared directory named in virtiofsd arguments: QEMU's `-o
/// source=DIR` (commas in DIR doubled) or the Rust virtiofsd's
/// `--shared-dir DIR`.
pub fn shared_dir_argument(args: &[String]) -> Option<String> {
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if let Some(dir) = arg.strip_prefix("--shared-dir=") {
            return Some(dir.to_owned());
        }
        let options = match arg.as_str() {
            "--shared-dir" => return it.next().cloned(),
            "-o" => it.next()?.as_str(),
            other => match other.strip_prefix("-o") {
                Some(rest) if !rest.is_empty() => rest,
                _ => continue,
            },
        };
        if let Some(dir) = source_option(options) {
            return Some(dir);
        }
    }
    None
}

/// `source=DIR` in a QEMU option list, where ",," is an escaped comma.
fn source_option(options: &str) -> Option<String> {
    let mut fields = vec![String::new()];
    let mut chars = options.chars().peekable();
    while let Some(c) = chars.next() {
        let field = fields.last_mut().expect("never empty");
        match c {
            ',' if chars.peek() == Some(&',') => {
                chars.next();
                field.push(',');
            }
            ',' => fields.push(String::new()),
            c => field.push(c),
        }
    }
    fields
        .into_iter()
        .find_map(|f| f.strip_prefix("source=").map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_shared_directory_in_either_virtiofsd_syntax() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            shared_dir_argument(&args(&[
                "--fd=3",
                "-o",
                "source=/nix/store,xattr",
                "-o",
                "cache=auto"
            ])),
            Some("/nix/store".into())
        );
        assert_eq!(
            shared_dir_argument(&args(&["-o", "cache=auto,source=/a,,b"])),
            Some("/a,b".into())
        );
        assert_eq!(
            shared_dir_argument(&args(&["-osource=/x"])),
            Some("/x".into())
        );
        assert_eq!(
            shared_dir_argument(&args(&["--shared-dir", "/y", "--readonly"])),
            Some("/y".into())
        );
        assert_eq!(
            shared_dir_argument(&args(&["--shared-dir=/z"])),
            Some("/z".into())
        );
        assert_eq!(shared_dir_argument(&args(&["--print-capabilities"])), None);
    }
}
