//! capstan-agent's components as a library, so the binary only parses and wires.

pub mod config_file;
pub mod healthz_addr;
pub mod install_cni;
