//! Declared volumes on the host: disk images for VMs (formatted here, so
//! that a volume stage 1 mounts, such as /var, boots the first time) and
//! directories for containers.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::host::path_str;
use super::GuestSpec;
use crate::contract::Volume;
use crate::formats::shell::{join, quote};

/// Creates missing volume images as sparse files and formats them;
/// existing ones (the guest's state) are never touched.
pub fn create_images(spec: &GuestSpec) -> Result<()> {
    for volume in &spec.manifest.volumes {
        let path = spec.volume_image(volume);
        if path.exists() {
            continue;
        }
        std::fs::create_dir_all(&spec.volume_dir)
            .with_context(|| format!("cannot create {}", spec.volume_dir.display()))?;
        let size = volume.size_bytes()?;
        // The guest's state is nobody else's business: owner-only. libvirt
        // hands the image to its QEMU user itself when it starts the guest.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        file.set_len(size)?;
        drop(file);
        // Formatted here, not in the guest: NixOS's stage 1 mounts /var and
        // the like but never formats them.
        if let Err(e) = format(volume, &path) {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
    }
    Ok(())
}

/// Shell lines doing what `create_images` does, for printed commands:
/// create missing images, never touch existing ones.
pub fn images_script(spec: &GuestSpec) -> Result<String> {
    let mut script = String::new();
    if spec.manifest.volumes.is_empty() {
        return Ok(script);
    }
    script.push_str(&format!(
        "mkdir -p {}\n",
        quote(path_str(&spec.volume_dir)?)
    ));
    for volume in &spec.manifest.volumes {
        let image = quote(path_str(&spec.volume_image(volume))?).into_owned();
        let mkfs = join(&mkfs_argv(volume, &spec.volume_image(volume))?);
        script.push_str(&format!(
            "[ -e {image} ] || {{ (umask 077 && truncate -s {} {image}) && {mkfs}; }}\n",
            volume.size_bytes()?
        ));
    }
    Ok(script)
}

fn mkfs_argv(volume: &Volume, image: &Path) -> Result<Vec<String>> {
    Ok(vec![
        format!("mkfs.{}", volume.fs_type),
        "-q".into(),
        path_str(image)?.to_owned(),
    ])
}

fn format(volume: &Volume, image: &Path) -> Result<()> {
    let argv = mkfs_argv(volume, image)?;
    let out = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("cannot run {} to format volume {}", argv[0], volume.name))?;
    if !out.status.success() {
        bail!(
            "{} could not format volume {}: {}",
            argv[0],
            volume.name,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
