//! This node's subnet as registration reads it from the overlay's subnet
//! file (the Node's podCIDR), through the one subnet-file contract. Reads
//! only; never writes the file.

use std::path::Path;

use ipnetwork::{IpNetwork, Ipv4Network};

/// The IPv4 subnet the file at `path` gives this node, as a network
/// address; `None` while the file is missing or unreadable.
pub fn own_subnet(path: &Path) -> Option<Ipv4Network> {
    match capstan_subnet_file::previous_subnet(path)? {
        IpNetwork::V4(n) => Some(n),
        IpNetwork::V6(_) => None,
    }
}
