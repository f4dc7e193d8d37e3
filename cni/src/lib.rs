//! Capstan's CNI plugin as a library: the CNI protocol (`protocol`) kept apart
//! from the plugin's work (config, subnet file, IPAM, netlink). The binary in
//! main.rs only wires these; nothing here writes to stdout except `protocol::dispatch`.

pub mod config;
pub mod error;
pub mod ipam;
pub mod netlink;
pub mod plugin;
pub mod protocol;
pub mod subnet_file;
