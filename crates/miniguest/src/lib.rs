//! Miniguest: NixOS guests built into small store paths and kept in Nix
//! profiles, run by real hypervisors with the host's store shared read-only.
//!
//! The layers, each using only those below it (see docs/architecture.md):
//! `cli` and `commands` on top; `service` (what Miniguest does with a
//! guest across backends); `backend` (one module per hypervisor); and
//! beneath them `guest` (what Miniguest keeps per guest), `nix` (the Nix
//! wrapper, store paths, profiles), `contract` (the guest output and its
//! manifest), `formats` (the writers) and `fs` (atomic file writes). `remote` carries a
//! command to another host (ssh and Nix's remote store); `commands` uses it.

pub mod backend;
pub mod cli;
pub mod commands;
pub mod completion;
pub mod contract;
pub mod formats;
pub mod fs;
pub mod guest;
pub mod nix;
pub mod remote;
pub mod service;
pub mod template;
