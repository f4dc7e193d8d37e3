//! Capstan's CNI plugin as a library: the CNI protocol (`protocol`) kept apart
//! from the plugin's work (config, subnet file, IPAM, netlink). Nothing in
//! the library writes to stdout: `protocol::dispatch` returns the answer and
//! main.rs, which only wires, prints it.

pub mod config;
pub mod error;
pub mod ipam;
pub mod netlink;
pub mod plugin;
pub mod protocol;
pub mod subnet_file;
