//! Runs virtiofsd on a directory that is read-only for it: QEMU's virtiofsd
//! has no read-only mode, so a guest root that remounts its store share
//! read-write would otherwise write into the host's store.
//!
//! Takes virtiofsd's own arguments (as libvirt, `miniguest run` or a
//! printed command pass them), finds the shared directory among them, and
//! in a private mount namespace binds that directory onto itself read-only
//! before executing the real virtiofsd. The kernel then refuses every
//! write, whatever the guest asks for.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

fn main() {
    let err = run();
    if let Err(e) = err {
        eprintln!("miniguest-virtiofsd: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let real = miniguest::backend::qemu::virtiofsd::binary()?;
    // libvirt asks what the binary can do before using it.
    if !args.iter().any(|a| a == "--print-capabilities") {
        let dir = miniguest::backend::qemu::virtiofsd::shared_dir_argument(&args).context(
            "no shared directory (-o source=DIR or --shared-dir DIR) among the arguments",
        )?;
        make_read_only(&PathBuf::from(dir))?;
    }
    let err = std::process::Command::new(&real).args(&args).exec();
    bail!("cannot run {}: {err}", real.display())
}

fn make_read_only(dir: &std::path::Path) -> Result<()> {
    miniguest::backend::store_view::enter_private_mount_namespace()?;
    // Submounts included: a closure-only view is one bind per path.
    miniguest::backend::store_view::cover_read_only(dir)
}
