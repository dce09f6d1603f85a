//! What Miniguest keeps about each guest on the host, apart from the Nix
//! store: its name, where its link, profile and records live (`layout`),
//! the flake it came from (`origin`), what a running guest booted
//! (`booted`), and the lock that serialises commands on it.

pub mod booted;
pub mod layout;
pub mod lock;
pub mod name;
pub mod origin;

pub use layout::{Entry, Layout};
pub use name::GuestName;
