//! Names of a service's own chains and sets.

use std::net::IpAddr;

use sha2::{Digest, Sha256};

use crate::model::{Endpoint, ServicePortName};
use crate::nft::expr::name;

fn hash8(s: &str) -> String {
    let d = Sha256::digest(s.as_bytes());
    hex::encode(&d[..4])
}

/// Deterministic, readable and unique chain names: the hash (of the
/// unsanitised text) keeps names distinct whatever the readable part looks
/// like, and the readable part keeps only characters nft accepts.
pub fn chain_name(kind: &str, base: &str) -> String {
    name(&format!("{kind}-{}-{base}", hash8(base)))
}

/// The text an endpoint's chain and affinity set names are made from.
pub(super) fn endpoint_base(spn: &ServicePortName, ep: &Endpoint) -> String {
    let ip = match ep.ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    };
    format!("{spn}__{ip}/{}", ep.port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_deterministic_and_distinct() {
        assert_eq!(
            chain_name("service", "a/b/tcp/"),
            chain_name("service", "a/b/tcp/")
        );
        assert_ne!(
            chain_name("service", "a/b/tcp/x"),
            chain_name("service", "a/b/tcp/y")
        );
        assert!(chain_name("service", "ns/web/tcp/http").starts_with("service-"));
    }
}
