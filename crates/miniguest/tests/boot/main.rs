//! End-to-end: the stand-in guest installed with the CLI and booted by every
//! backend, reading what the guest itself printed. One test binary, so that
//! the tests of every backend run in parallel; one module per backend.

#[path = "../common/mod.rs"]
mod common;

mod helpers;

mod credentials;
mod day_three;
mod guest_module;
mod host_module;
mod libvirt;
mod lxc;
mod nspawn;
mod qemu;
mod remote;
mod store_view;
mod systemd;
