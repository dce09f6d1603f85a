//! The writers of every format Miniguest hands to another program. A value
//! a guest output supplies reaches a config file, a script or XML only
//! through one of these, which escape it or refuse it; call sites never
//! build those formats by hand.

pub mod lxc;
pub mod nix;
pub mod shell;
pub mod unit;
pub mod xml;
