//! The example flake that `miniguest template` writes, embedded at build time
//! from the repository's `template/` directory.

include!(concat!(env!("OUT_DIR"), "/template_files.rs"));
