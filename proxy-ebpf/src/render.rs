//! Desired model → nft objects for one service and one address family:
//! the chains (by deterministic hashed names), the affinity sets and the
//! verdict-map elements. Pure; it must never compare with what is
//! programmed (plan.rs does) nor run nft.
//!
//! Per service port: `service-*` picks among cluster endpoints (numgen)
//! and DNATs, `external-*` is the entry for NodePort/externalIPs/LB IPs
//! (masquerades, or for externalTrafficPolicy Local keeps the client IP and
//! goes to `local-*`); with session affinity one `endpoint-*` chain per
//! endpoint refreshes the affinity set and DNATs. Hairpin traffic is
//! masqueraded by the skeleton's `hairpin` set of endpoint addresses.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use sha2::{Digest, Sha256};

use crate::model::endpoints::usable;
use crate::model::{Endpoint, IpFamily, ServicePortInfo, ServicePortName};
use crate::nft::expr::*;
use crate::nft::skeleton::{
    MARK_FOR_MASQUERADE, NODEPORTS_MAP, NO_ENDPOINT_NODEPORTS_MAP, NO_ENDPOINT_SERVICES_MAP,
    REJECT_CHAIN, SERVICE_IPS_MAP,
};
use crate::tracker::ServiceState;

/// What rendering needs to know about this node.
#[derive(Debug, Clone)]
pub struct Context {
    pub family: IpFamily,
    pub node_name: String,
    /// The pod network: traffic to a ClusterIP from outside it is
    /// masqueraded, pod traffic to an external address is not treated as
    /// external. None: no off-cluster masquerade for ClusterIPs.
    pub cluster_cidr: Option<(IpAddr, u8)>,
}

/// A verdict-map element: (map, key as nft text, e.g. `10.96.0.10 . tcp . 80`).
pub type ElementKey = (&'static str, String);

/// The nft objects one service owns. Equal models render equal objects.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rendered {
    /// Chain name → rules as nft text, in order. This (not the transaction
    /// text) is what the proxy keeps per service: 10,000 services hold
    /// ~120,000 rules of ~60 bytes.
    pub chains: BTreeMap<String, Vec<String>>,
    /// Affinity set name → timeout in seconds.
    pub sets: BTreeMap<String, u32>,
    /// Map element → verdict (`goto <chain>`).
    pub elements: BTreeMap<ElementKey, String>,
    /// Endpoint addresses whose traffic to themselves (hairpin) must be
    /// masqueraded; shared between services, so counted by the proxier.
    pub hairpin: BTreeSet<IpAddr>,
}

impl Rendered {
    pub fn merge(&mut self, other: Rendered) {
        self.chains.extend(other.chains);
        self.sets.extend(other.sets);
        self.elements.extend(other.elements);
        self.hairpin.extend(other.hairpin);
    }

    pub fn is_empty(&self) -> bool {
        self.chains.is_empty()
            && self.sets.is_empty()
            && self.elements.is_empty()
            && self.hairpin.is_empty()
    }
}

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

fn endpoint_base(spn: &ServicePortName, ep: &Endpoint) -> String {
    let ip = match ep.ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    };
    format!("{spn}__{ip}/{}", ep.port)
}

/// Renders every port of one service for `ctx.family`.
pub fn render_service(ctx: &Context, state: &ServiceState) -> Rendered {
    let mut out = Rendered::default();
    for (spn, (info, eps)) in state {
        out.merge(render_port(ctx, spn, info, eps));
    }
    out
}

pub fn render_port(
    ctx: &Context,
    spn: &ServicePortName,
    info: &ServicePortInfo,
    eps: &[Endpoint],
) -> Rendered {
    let f = ctx.family;
    let mut out = Rendered::default();
    let cluster_ips: Vec<IpAddr> = info
        .cluster_ips
        .iter()
        .copied()
        .filter(|ip| IpFamily::of(ip) == f)
        .collect();
    if cluster_ips.is_empty() {
        return out; // single-stack service of the other family
    }
    let eps: Vec<Endpoint> = eps
        .iter()
        .filter(|e| IpFamily::of(&e.ip) == f)
        .cloned()
        .collect();
    let base = spn.to_string();
    let proto = info.protocol.nft();
    let proto_match = rule(&[L4PROTO, proto]);
    let node = ctx.node_name.as_str();
    let cluster_eps = usable(&eps, info.internal_local.then_some(node));
    let local_eps = usable(&eps, Some(node));
    let any_eps = usable(&eps, None);

    // Services with affinity get a chain and a timeout set per endpoint
    // (the set remembers clients; the chain refreshes it and DNATs).
    // Others DNAT straight from the service chain: per-endpoint chains
    // cost a kernel object each, and the kernel's chain dumps grow
    // quadratically with their number (measured: README, proxy section).
    let mut endpoint_chain: BTreeMap<(IpAddr, u16), (String, String)> = BTreeMap::new();
    if let Some(timeout) = info.affinity_timeout_s {
        for ep in cluster_eps.iter().chain(local_eps.iter()) {
            if endpoint_chain.contains_key(&(ep.ip, ep.port)) {
                continue;
            }
            let eb = endpoint_base(spn, ep);
            let chain = chain_name("endpoint", &eb);
            // The timeout is part of the set's identity: a new timeout makes
            // a new set and the chain switches to it in one transaction.
            let set = chain_name("affinity", &format!("{eb}/{timeout}"));
            let rules = vec![
                set_update(&set, &saddr(f)),
                rule(&[&proto_match, &dnat(ep.ip, ep.port)]),
            ];
            out.chains.insert(chain.clone(), rules);
            out.sets.insert(set.clone(), timeout);
            endpoint_chain.insert((ep.ip, ep.port), (chain, set));
        }
    }
    for ep in cluster_eps.iter().chain(local_eps.iter()) {
        out.hairpin.insert(ep.ip);
    }
    let pick = |list: &[&Endpoint]| -> Vec<String> {
        if list.is_empty() {
            return vec!["drop".to_string()];
        }
        let mut rules = Vec::new();
        if info.affinity_timeout_s.is_some() {
            for e in list {
                if let Some((chain, set)) = endpoint_chain.get(&(e.ip, e.port)) {
                    rules.push(rule(&[&in_set(&saddr(f), set), &goto(chain)]));
                }
            }
        }
        // Uniform choice without an anonymous set per service: endpoint i
        // is taken with probability 1/(n-i) when no earlier one was.
        let n = list.len();
        for (i, e) in list.iter().enumerate() {
            let mut parts: Vec<String> = Vec::with_capacity(3);
            if i + 1 < n {
                parts.push(numgen_zero(n - i));
            }
            match endpoint_chain.get(&(e.ip, e.port)) {
                Some((chain, _)) => parts.push(goto(chain)),
                None => {
                    parts.push(proto_match.clone());
                    parts.push(dnat(e.ip, e.port));
                }
            }
            rules.push(parts.join(" "));
        }
        rules
    };

    let cidr = ctx.cluster_cidr.filter(|(n, _)| IpFamily::of(n) == f);
    let service_chain = chain_name("service", &base);
    let mut rules = Vec::new();
    if let Some((net, len)) = cidr {
        // Off-cluster clients reaching a ClusterIP (e.g. routed through
        // this node) need their replies to come back here.
        rules.push(rule(&[
            &format!("{} != {}", saddr(f), prefix(net, len)),
            &jump(MARK_FOR_MASQUERADE),
        ]));
    }
    rules.extend(pick(&cluster_eps));
    out.chains.insert(service_chain.clone(), rules);

    let external_chain = chain_name("external", &base);
    if info.has_external() {
        let mut rules = Vec::new();
        if info.external_local {
            // Traffic from this node or its pods may use any endpoint;
            // only traffic from outside is restricted to local endpoints,
            // and keeps its client address.
            rules.push(rule(&[&fib_local("saddr"), &jump(MARK_FOR_MASQUERADE)]));
            rules.push(rule(&[&fib_local("saddr"), &goto(&service_chain)]));
            if let Some((net, len)) = cidr {
                rules.push(rule(&[
                    &format!("{} {}", saddr(f), prefix(net, len)),
                    &goto(&service_chain),
                ]));
            }
            let local_chain = chain_name("local", &base);
            out.chains.insert(local_chain.clone(), pick(&local_eps));
            rules.push(goto(&local_chain));
        } else {
            rules.push(jump(MARK_FOR_MASQUERADE));
            rules.push(goto(&service_chain));
        }
        out.chains.insert(external_chain.clone(), rules);
    }

    // Map elements: where each destination goes, or reject when the
    // service has no endpoint at all.
    let reject = any_eps.is_empty() || (cluster_eps.is_empty() && !info.has_external());
    let port = info.port.to_string();
    let ip_key = |ip: &IpAddr| concat(&[&ip.to_string(), proto, &port]);
    let mut put = |map: &'static str, key: String, verdict: String| {
        out.elements.insert((map, key), verdict);
    };
    for ip in &cluster_ips {
        if reject {
            put(NO_ENDPOINT_SERVICES_MAP, ip_key(ip), goto(REJECT_CHAIN));
        } else {
            put(SERVICE_IPS_MAP, ip_key(ip), goto(&service_chain));
        }
    }
    let externals = info
        .external_ips
        .iter()
        .chain(info.load_balancer_ips.iter())
        .filter(|ip| IpFamily::of(ip) == f);
    for ip in externals {
        if reject {
            put(NO_ENDPOINT_SERVICES_MAP, ip_key(ip), goto(REJECT_CHAIN));
        } else {
            put(SERVICE_IPS_MAP, ip_key(ip), goto(&external_chain));
        }
    }
    if let Some(np) = info.node_port {
        let key = concat(&[proto, &np.to_string()]);
        if reject {
            put(NO_ENDPOINT_NODEPORTS_MAP, key, goto(REJECT_CHAIN));
        } else {
            put(NODEPORTS_MAP, key, goto(&external_chain));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Protocol, ServiceKey};

    fn ctx() -> Context {
        Context {
            family: IpFamily::V4,
            node_name: "n1".into(),
            cluster_cidr: Some(("10.244.0.0".parse().unwrap(), 16)),
        }
    }

    fn spn() -> ServicePortName {
        ServicePortName {
            service: ServiceKey::new("ns", "web"),
            port_name: "http".into(),
            protocol: Protocol::Tcp,
        }
    }

    fn info() -> ServicePortInfo {
        ServicePortInfo {
            cluster_ips: vec!["10.96.0.10".parse().unwrap(), "fd00::10".parse().unwrap()],
            port: 80,
            protocol: Protocol::Tcp,
            node_port: Some(30080),
            external_ips: vec![],
            load_balancer_ips: vec![],
            affinity_timeout_s: None,
            external_local: false,
            internal_local: false,
            health_check_node_port: None,
        }
    }

    fn ep(ip: &str, node: &str) -> Endpoint {
        Endpoint {
            ip: ip.parse().unwrap(),
            port: 8080,
            ready: true,
            serving: true,
            terminating: false,
            node_name: Some(node.into()),
        }
    }

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

    #[test]
    fn cluster_ip_and_node_port_with_two_endpoints() {
        let r = render_port(
            &ctx(),
            &spn(),
            &info(),
            &[ep("10.244.1.2", "n1"), ep("10.244.2.2", "n2")],
        );
        // service, external; no per-endpoint chains without affinity
        assert_eq!(r.chains.len(), 2);
        let svc = &r.chains[&chain_name("service", "ns/web/tcp/http")];
        assert_eq!(
            svc.len(),
            3,
            "masquerade off-cluster + one rule per endpoint: {svc:?}"
        );
        assert_eq!(svc[0], "ip saddr != 10.244.0.0/16 jump mark-for-masquerade");
        assert_eq!(
            svc[1],
            "numgen random mod 2 == 0 meta l4proto tcp dnat ip to 10.244.1.2:8080"
        );
        assert_eq!(svc[2], "meta l4proto tcp dnat ip to 10.244.2.2:8080");
        assert!(!svc.iter().any(|r| r.contains('{')), "no anonymous sets");
        assert_eq!(r.hairpin.len(), 2);
        let maps: std::collections::BTreeSet<&str> = r.elements.keys().map(|(m, _)| *m).collect();
        assert_eq!(maps, [SERVICE_IPS_MAP, NODEPORTS_MAP].into());
        assert_eq!(
            r.elements[&(SERVICE_IPS_MAP, "10.96.0.10 . tcp . 80".to_string())],
            goto(&chain_name("service", "ns/web/tcp/http"))
        );
        assert!(r
            .elements
            .contains_key(&(NODEPORTS_MAP, "tcp . 30080".to_string())));
        // The v6 cluster IP is not in the v4 rendering.
        assert!(!r.elements.keys().any(|(_, k)| k.contains("fd00")));
    }

    #[test]
    fn no_endpoints_rejects() {
        let r = render_port(&ctx(), &spn(), &info(), &[]);
        assert!(r.elements.keys().all(|(m, _)| m.starts_with("no-endpoint")));
        assert!(r.elements.values().all(|v| v == &goto(REJECT_CHAIN)));
        assert_eq!(r.elements.len(), 2);
    }

    #[test]
    fn external_local_uses_only_local_endpoints() {
        let mut i = info();
        i.external_local = true;
        let r = render_port(
            &ctx(),
            &spn(),
            &i,
            &[ep("10.244.1.2", "n1"), ep("10.244.2.2", "n2")],
        );
        let local = &r.chains[&chain_name("local", "ns/web/tcp/http")];
        assert_eq!(local.len(), 1);
        assert!(local[0].contains("10.244.1.2"));
        let ext = &r.chains[&chain_name("external", "ns/web/tcp/http")];
        assert!(
            !ext.iter().any(|rule| rule == &jump(MARK_FOR_MASQUERADE)),
            "no SNAT from outside"
        );
    }

    #[test]
    fn affinity_adds_sets_and_sticky_rules() {
        let mut i = info();
        i.affinity_timeout_s = Some(7);
        let r = render_port(&ctx(), &spn(), &i, &[ep("10.244.1.2", "n1")]);
        assert_eq!(r.sets.values().copied().collect::<Vec<_>>(), vec![7]);
        let svc = &r.chains[&chain_name("service", "ns/web/tcp/http")];
        assert!(svc
            .iter()
            .any(|rule| rule.starts_with("ip saddr @affinity-")));
        let ep_chain = r
            .chains
            .keys()
            .find(|c| c.starts_with("endpoint-"))
            .unwrap();
        assert!(r.chains[ep_chain][0].starts_with("update @affinity-"));
        assert!(r.chains[ep_chain][0].ends_with("{ ip saddr }"));
    }

    #[test]
    fn v6_renders_only_v6() {
        let mut c = ctx();
        c.family = IpFamily::V6;
        c.cluster_cidr = Some(("fd00:244::".parse().unwrap(), 48));
        let r = render_port(
            &c,
            &spn(),
            &info(),
            &[ep("10.244.1.2", "n1"), ep("fd00:244:1::2", "n1")],
        );
        assert!(r
            .elements
            .contains_key(&(SERVICE_IPS_MAP, "fd00::10 . tcp . 80".to_string())));
        let svc = &r.chains[&chain_name("service", "ns/web/tcp/http")];
        assert_eq!(
            svc[0],
            "ip6 saddr != fd00:244::/48 jump mark-for-masquerade"
        );
        assert_eq!(svc[1], "meta l4proto tcp dnat ip6 to [fd00:244:1::2]:8080");
        assert_eq!(r.hairpin.len(), 1);
        assert!(r.hairpin.iter().all(|ip| ip.is_ipv6()));
    }
}
