//! Files and directories of a guest output, relative to its root, and the
//! virtio tags of its two read-only shares (`nix/lib/contract.nix`'s
//! `layout`).

pub const MANIFEST: &str = "miniguest.json";
/// Written by Miniguest before the manifest was versioned.
pub const LEGACY_MANIFEST: &str = "miniguest-config.json";
pub const KERNEL: &str = "kernel";
pub const INITRD: &str = "initrd";
pub const BOOT_DIR: &str = "boot";
pub const INIT: &str = "boot/init";
pub const REGISTRATION: &str = "boot/nix-path-registration";
/// virtio tag under which the host's /nix/store is shared.
pub const STORE_TAG: &str = "nix-store";
/// virtio tag under which the guest's `boot` directory is shared.
pub const BOOT_TAG: &str = "boot";
