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

    /// The writer's format is tested in capstan-subnet-file; here only
    /// that the overlay takes the IPv4 subnet back and nothing else.
    #[test]
    fn takes_back_only_an_ipv4_subnet() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("subnet.env");
        assert_eq!(previous_subnet(&path), None);
        std::fs::write(
            &path,
            "CAPSTAN_SUBNET=10.244.7.1/24
",
        )
        .expect("write");
        assert_eq!(previous_subnet(&path), "10.244.7.0/24".parse().ok());
        std::fs::write(
            &path,
            "CAPSTAN_IPV6_SUBNET=fd00:0:0:7::1/64
",
        )
        .expect("write");
        assert_eq!(previous_subnet(&path), None);
    }
}
