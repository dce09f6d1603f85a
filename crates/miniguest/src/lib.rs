//! Miniguest: NixOS guests built into small store paths and kept in Nix
//! profiles, run by real hypervisors with the host's store shared read-only.

pub mod backends;
pub mod booted;
pub mod cli;
pub mod commands;
pub mod completion;
pub mod formats;
pub mod guest_name;
pub mod installable;
pub mod layout;
pub mod lock;
pub mod manifest;
pub mod nix;
pub mod nix_profile;
pub mod origin;
pub mod output;
pub mod placement;
pub mod profile;

pub mod store_path;
pub mod template;
