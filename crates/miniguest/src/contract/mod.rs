//! The guest output contract, Rust side. The single description of it is
//! `docs/contract.md`; `nix/lib/contract.nix` is the Nix side, and the test
//! suite evaluates that file and checks it against the constants, rules and
//! parser here.
//!
//! - `files`: what a guest output holds, and where;
//! - `values`: the manifest's names and paths, each checked when it is made;
//! - `manifest`: the manifest itself, its wire format and its rules;
//! - `output`: the one check of an output's layout;
//! - `registration`: the closure the output registers.

pub mod files;
mod legacy;
pub mod manifest;
pub mod output;
pub mod registration;
pub mod values;

pub use manifest::*;
