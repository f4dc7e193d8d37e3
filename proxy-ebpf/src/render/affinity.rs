//! Session affinity: a chain and a timeout set per endpoint. The set
//! remembers clients; the chain refreshes it and DNATs. Only services with
//! affinity get per-endpoint chains: each costs a kernel object, and the
//! kernel's chain dumps grow quadratically with their number (measured:
//! README, proxy section).

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::model::{Endpoint, IpFamily, ServicePortName};
use crate::nft::expr::*;

use super::names::{chain_name, endpoint_base};
use super::Rendered;

/// Endpoint (address, port) → (its chain, its affinity set). Empty for a
/// service without affinity.
#[derive(Default)]
pub(super) struct EndpointChains(BTreeMap<(IpAddr, u16), (String, String)>);

impl EndpointChains {
    /// Renders one chain and set per distinct endpoint of `eps` into `out`.
    pub fn render<'e>(
        f: IpFamily,
        spn: &ServicePortName,
        timeout: u32,
        proto_match: &str,
        eps: impl Iterator<Item = &'e Endpoint>,
        out: &mut Rendered,
    ) -> EndpointChains {
        let mut chains = BTreeMap::new();
        for ep in eps {
            if chains.contains_key(&(ep.ip, ep.port)) {
                continue;
            }
            let eb = endpoint_base(spn, ep);
            let chain = chain_name("endpoint", &eb);
            // The timeout is part of the set's identity: a new timeout makes
            // a new set and the chain switches to it in one transaction.
            let set = chain_name("affinity", &format!("{eb}/{timeout}"));
            let rules = vec![
                set_update(&set, &saddr(f)),
                rule(&[proto_match, &dnat(ep.ip, ep.port)]),
            ];
            out.chains.insert(chain.clone(), rules);
            out.sets.insert(set.clone(), timeout);
            chains.insert((ep.ip, ep.port), (chain, set));
        }
        EndpointChains(chains)
    }

    /// The endpoint's own chain, if it has one.
    pub fn chain(&self, ep: &Endpoint) -> Option<&str> {
        self.0
            .get(&(ep.ip, ep.port))
            .map(|(chain, _)| chain.as_str())
    }

    /// Rules sending a client the set remembers back to its endpoint, for
    /// the endpoints of `list`; they come before the random choice.
    pub fn sticky_rules(&self, f: IpFamily, list: &[&Endpoint]) -> Vec<String> {
        list.iter()
            .filter_map(|e| self.0.get(&(e.ip, e.port)))
            .map(|(chain, set)| rule(&[&in_set(&saddr(f), set), &goto(chain)]))
            .collect()
    }
}
