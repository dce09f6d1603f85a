//! Acting on another host: Nix's remote store carries closures there, and
//! ssh runs this program there. No agent and no protocol of Miniguest's
//! own: what runs on the host is the same Miniguest, with every check it
//! makes here.

pub mod argv;
pub mod build_host;
pub mod program;
pub mod session;
pub mod target;

pub use session::Session;
pub use target::Target;
