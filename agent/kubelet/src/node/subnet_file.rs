//! The overlay's subnet file as node registration reads it: only this
//! node's subnet (the Node's podCIDR). A reader kept here until the shared
//! subnet-file crate replaces it; never writes the file.

use std::path::Path;

use ipnetwork::Ipv4Network;

/// The subnet in `CAPSTAN_SUBNET=` of the file at `path`, as a network
/// address; `None` while the file is missing or unreadable.
pub fn previous_subnet(path: &Path) -> Option<Ipv4Network> {
    let text = std::fs::read_to_string(path).ok()?;
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix("CAPSTAN_SUBNET="))?;
    let n: Ipv4Network = value.trim().parse().ok()?;
    Ipv4Network::new(n.network(), n.prefix()).ok()
}
