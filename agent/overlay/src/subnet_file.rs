//! The overlay's reading of the subnet file, whose format lives only in
//! `capstan-subnet-file` (the writer is called in `component/local.rs`):
//! the IPv4 subnet a previous run left there, preferred when re-acquiring.

use std::path::Path;

use ipnetwork::{IpNetwork, Ipv4Network};

pub use capstan_subnet_file::DEFAULT_PATH;

/// The IPv4 subnet recorded in an existing file (`CAPSTAN_SUBNET`), if readable.
pub fn previous_subnet(path: &Path) -> Option<Ipv4Network> {
    match capstan_subnet_file::previous_subnet(path)? {
        IpNetwork::V4(n) => Some(n),
        IpNetwork::V6(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capstan_subnet_file::{GatewayPrefix, SubnetFile};

    fn file() -> SubnetFile {
        let net = |s: &str| s.parse::<IpNetwork>().unwrap();
        SubnetFile {
            network: Some(net("10.244.0.0/16")),
            subnet: Some(GatewayPrefix::of_subnet(net("10.244.1.0/24"))),
            mtu: Some(1450),
            ip_masq: Some(true),
            ipv6_network: None,
            ipv6_subnet: None,
        }
    }

    #[test]
    fn writes_atomically_and_reads_back_the_subnet() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/capstan/subnet.env");
        assert_eq!(previous_subnet(&path), None);
        file().write(&path).unwrap();
        file().write(&path).unwrap();
        assert_eq!(
            previous_subnet(&path),
            Some("10.244.1.0/24".parse().unwrap())
        );
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
