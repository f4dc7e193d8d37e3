//! The rules with which a service's own chain picks one of its endpoints.

use crate::model::{Endpoint, IpFamily};
use crate::nft::expr::*;

use super::affinity::EndpointChains;

/// Picks one endpoint of `list`: through its affinity chain where it has
/// one, else by DNAT. No endpoint: drop.
pub(super) fn pick_rules(
    f: IpFamily,
    proto_match: &str,
    list: &[&Endpoint],
    endpoint_chains: &EndpointChains,
) -> Vec<String> {
    if list.is_empty() {
        return vec!["drop".to_string()];
    }
    let mut rules = endpoint_chains.sticky_rules(f, list);
    // Uniform choice without an anonymous set per service: endpoint i
    // is taken with probability 1/(n-i) when no earlier one was.
    let n = list.len();
    for (i, e) in list.iter().enumerate() {
        let mut parts: Vec<String> = Vec::with_capacity(3);
        if i + 1 < n {
            parts.push(numgen_zero(n - i));
        }
        match endpoint_chains.chain(e) {
            Some(chain) => parts.push(goto(chain)),
            None => {
                parts.push(proto_match.to_string());
                parts.push(dnat(e.ip, e.port));
            }
        }
        rules.push(parts.join(" "));
    }
    rules
}
