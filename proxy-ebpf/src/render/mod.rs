//! Desired model → nft objects for one service and one address family:
//! map elements, and for the few services that need them their own chains
//! and affinity sets. Pure; it must never compare with what is programmed
//! (plan.rs does) nor run nft.
//!
//! Most services own no chain and no rule: a destination's element in
//! `service-ips`/`service-nodeports` sends it to a shared `pick-<kind>-<n>`
//! chain (`dnat to <destination> . numgen random mod n map @endpoints`),
//! and the service's endpoints are elements of the `endpoints` maps keyed
//! by destination and slot. An endpoint change is then a change of
//! non-verdict elements only: no nft run, no rule, and the kernel does not
//! re-validate the table's chains. Services with session affinity or
//! externalTrafficPolicy Local keep chains of their own: `service-*` picks
//! among cluster endpoints, `external-*` is the external entry (goes to
//! `local-*` for outside clients), and with affinity one `endpoint-*`
//! chain per endpoint refreshes the affinity set and DNATs. Hairpin
//! traffic is masqueraded by the skeleton's `hairpin` set.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use sha2::{Digest, Sha256};

use crate::model::endpoints::usable;
use crate::model::{Endpoint, IpFamily, ServicePortInfo, ServicePortName};
use crate::nft::element::{Key, Value};
use crate::nft::expr::*;
use crate::nft::skeleton::{
    endpoints_map, nodeport_endpoints_map, Pick, PickKind, MARK_FOR_MASQUERADE, NODEPORTS_MAP,
    NO_ENDPOINT_NODEPORTS_MAP, NO_ENDPOINT_SERVICES_MAP, REJECT_CHAIN, SERVICE_IPS_MAP,
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

/// A map element: (map, key).
pub type ElementKey = (&'static str, Key);

/// The nft objects one service owns. Equal models render equal objects.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rendered {
    /// Chain name → rules as nft text, in order. This (not the transaction
    /// text) is what the proxy keeps per service: 10,000 services hold
    /// ~120,000 rules of ~60 bytes.
    pub chains: BTreeMap<String, Vec<String>>,
    /// Affinity set name → timeout in seconds.
    pub sets: BTreeMap<String, u32>,
    /// Map element → value (a verdict, or an endpoint's address).
    pub elements: BTreeMap<ElementKey, Value>,
    /// Endpoint addresses whose traffic to themselves (hairpin) must be
    /// masqueraded; shared between services, so counted by the proxier.
    pub hairpin: BTreeSet<IpAddr>,
    /// The shared pick chains this service's elements go to.
    pub picks: BTreeSet<Pick>,
}

impl Rendered {
    pub fn merge(&mut self, other: Rendered) {
        self.chains.extend(other.chains);
        self.sets.extend(other.sets);
        self.elements.extend(other.elements);
        self.hairpin.extend(other.hairpin);
        self.picks.extend(other.picks);
    }

    pub fn is_empty(&self) -> bool {
        self.chains.is_empty()
            && self.sets.is_empty()
            && self.elements.is_empty()
            && self.hairpin.is_empty()
            && self.picks.is_empty()
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
    // Which endpoints each kind of traffic may use, as kube-proxy's
    // CategorizeEndpoints: internalTrafficPolicy restricts traffic to the
    // ClusterIPs only; external destinations use every endpoint (Cluster)
    // or this node's (Local), and pod or node traffic to an external
    // destination short-circuits to every endpoint.
    let internal_eps = usable(&eps, info.internal_local.then_some(node));
    let cluster_eps = usable(&eps, None);
    let local_eps = usable(&eps, Some(node));
    // Reject only a service without a usable endpoint anywhere; a Local
    // policy without one on this node drops instead (kube-proxy does: the
    // client must not take "refused" for "the service is down").
    let reject = cluster_eps.is_empty();
    if info.affinity_timeout_s.is_none() && !info.external_local {
        let eps = Usable {
            internal: &internal_eps,
            cluster: &cluster_eps,
        };
        render_shared(ctx, info, &cluster_ips, eps, reject, &mut out);
        return out;
    }
    let all_eps = || {
        internal_eps
            .iter()
            .chain(cluster_eps.iter())
            .chain(local_eps.iter())
    };

    // Services with affinity get a chain and a timeout set per endpoint
    // (the set remembers clients; the chain refreshes it and DNATs).
    // Others DNAT straight from the service chain: per-endpoint chains
    // cost a kernel object each, and the kernel's chain dumps grow
    // quadratically with their number (measured: README, proxy section).
    let mut endpoint_chain: BTreeMap<(IpAddr, u16), (String, String)> = BTreeMap::new();
    if let Some(timeout) = info.affinity_timeout_s {
        for ep in all_eps() {
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
    for ep in all_eps() {
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
    rules.extend(pick(&internal_eps));
    out.chains.insert(service_chain.clone(), rules);

    // External traffic that may use every endpoint: the service chain,
    // unless internalTrafficPolicy Local narrowed that one to this node.
    let cluster_chain = if info.internal_local && info.has_external() {
        let chain = chain_name("cluster", &base);
        out.chains.insert(chain.clone(), pick(&cluster_eps));
        chain
    } else {
        service_chain.clone()
    };

    let external_chain = chain_name("external", &base);
    if info.has_external() {
        let mut rules = Vec::new();
        if info.external_local {
            // Traffic from this node or its pods may use any endpoint;
            // only traffic from outside is restricted to local endpoints,
            // and keeps its client address.
            rules.push(rule(&[&fib_local("saddr"), &jump(MARK_FOR_MASQUERADE)]));
            rules.push(rule(&[&fib_local("saddr"), &goto(&cluster_chain)]));
            if let Some((net, len)) = cidr {
                rules.push(rule(&[
                    &format!("{} {}", saddr(f), prefix(net, len)),
                    &goto(&cluster_chain),
                ]));
            }
            let local_chain = chain_name("local", &base);
            out.chains.insert(local_chain.clone(), pick(&local_eps));
            rules.push(goto(&local_chain));
        } else {
            rules.push(jump(MARK_FOR_MASQUERADE));
            rules.push(goto(&cluster_chain));
        }
        out.chains.insert(external_chain.clone(), rules);
    }

    // Map elements: where each destination goes, or reject when the
    // service has no endpoint at all.
    let (proto, port) = (info.protocol, info.port);
    let dest = |addr: &IpAddr| Key::Dest {
        addr: *addr,
        proto,
        port,
    };
    let mut put = |map: &'static str, key: Key, verdict: Value| {
        out.elements.insert((map, key), verdict);
    };
    let reject_to = || Value::Goto(REJECT_CHAIN.to_string());
    for ip in &cluster_ips {
        if reject {
            put(NO_ENDPOINT_SERVICES_MAP, dest(ip), reject_to());
        } else {
            put(
                SERVICE_IPS_MAP,
                dest(ip),
                Value::Goto(service_chain.clone()),
            );
        }
    }
    for ip in externals(info, f) {
        if reject {
            put(NO_ENDPOINT_SERVICES_MAP, dest(ip), reject_to());
        } else {
            put(
                SERVICE_IPS_MAP,
                dest(ip),
                Value::Goto(external_chain.clone()),
            );
        }
    }
    if let Some(np) = info.node_port {
        let key = Key::NodePort { proto, port: np };
        if reject {
            put(NO_ENDPOINT_NODEPORTS_MAP, key, reject_to());
        } else {
            put(NODEPORTS_MAP, key, Value::Goto(external_chain.clone()));
        }
    }
    out
}

/// External and load-balancer IPs of this family.
fn externals(info: &ServicePortInfo, f: IpFamily) -> impl Iterator<Item = &IpAddr> {
    info.external_ips
        .iter()
        .chain(info.load_balancer_ips.iter())
        .filter(move |ip| IpFamily::of(ip) == f)
}

/// The endpoints a shared service's destinations pick from.
#[derive(Clone, Copy)]
struct Usable<'a, 'e> {
    /// For ClusterIPs (internalTrafficPolicy applied).
    internal: &'a [&'e Endpoint],
    /// For external IPs, load-balancer IPs and NodePorts.
    cluster: &'a [&'e Endpoint],
}

/// A service without affinity and with externalTrafficPolicy Cluster:
/// elements only. Every destination (cluster IP, external IP, NodePort)
/// goes to the shared pick chain for its kind and endpoint count, and gets
/// one `endpoints` element per slot.
fn render_shared(
    ctx: &Context,
    info: &ServicePortInfo,
    cluster_ips: &[IpAddr],
    eps: Usable<'_, '_>,
    reject: bool,
    out: &mut Rendered,
) {
    let (proto, port) = (info.protocol, info.port);
    for ep in eps.internal.iter().chain(eps.cluster) {
        out.hairpin.insert(ep.ip);
    }
    let targets = |list: &[&Endpoint]| -> Vec<(u32, Value)> {
        list.iter()
            .enumerate()
            .map(|(i, e)| (i as u32, Value::Target(e.ip, e.port)))
            .collect()
    };
    // Not rejected but nothing to pick from (internalTrafficPolicy Local
    // with no endpoint on this node): kube-proxy drops.
    let verdict = |out: &mut Rendered, kind: PickKind, n: usize| {
        if n == 0 {
            return Value::Drop;
        }
        let pick = Pick { kind, proto, n };
        let v = Value::Goto(pick.chain());
        out.picks.insert(pick);
        v
    };
    let dests: Vec<(IpAddr, PickKind, &[&Endpoint])> = cluster_ips
        .iter()
        .map(|ip| (*ip, PickKind::Cluster, eps.internal))
        .chain(externals(info, ctx.family).map(|ip| (*ip, PickKind::External, eps.cluster)))
        .collect();
    for (addr, kind, list) in dests {
        let key = Key::Dest { addr, proto, port };
        if reject {
            let v = Value::Goto(REJECT_CHAIN.to_string());
            out.elements.insert((NO_ENDPOINT_SERVICES_MAP, key), v);
            continue;
        }
        let v = verdict(out, kind, list.len());
        out.elements.insert((SERVICE_IPS_MAP, key), v);
        for (slot, target) in targets(list) {
            let key = Key::DestSlot {
                addr,
                proto,
                port,
                slot,
            };
            out.elements.insert((endpoints_map(proto), key), target);
        }
    }
    if let Some(np) = info.node_port {
        let key = Key::NodePort { proto, port: np };
        if reject {
            let v = Value::Goto(REJECT_CHAIN.to_string());
            out.elements.insert((NO_ENDPOINT_NODEPORTS_MAP, key), v);
            return;
        }
        let v = verdict(out, PickKind::NodePort, eps.cluster.len());
        out.elements.insert((NODEPORTS_MAP, key), v);
        for (slot, target) in targets(eps.cluster) {
            let key = Key::NodePortSlot {
                proto,
                port: np,
                slot,
            };
            out.elements
                .insert((nodeport_endpoints_map(proto), key), target);
        }
    }
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

    fn dest(ip: &str) -> Key {
        Key::Dest {
            addr: ip.parse().unwrap(),
            proto: Protocol::Tcp,
            port: 80,
        }
    }

    #[test]
    fn shared_service_is_elements_only() {
        let r = render_port(
            &ctx(),
            &spn(),
            &info(),
            &[ep("10.244.1.2", "n1"), ep("10.244.2.2", "n2")],
        );
        assert!(r.chains.is_empty() && r.sets.is_empty(), "{r:?}");
        let picks: Vec<String> = r.picks.iter().map(Pick::chain).collect();
        assert_eq!(picks, vec!["pick-cluster-tcp-2", "pick-nodeport-tcp-2"]);
        assert_eq!(
            r.elements[&(SERVICE_IPS_MAP, dest("10.96.0.10"))],
            Value::Goto("pick-cluster-tcp-2".into())
        );
        let np = Key::NodePort {
            proto: Protocol::Tcp,
            port: 30080,
        };
        assert_eq!(
            r.elements[&(NODEPORTS_MAP, np)],
            Value::Goto("pick-nodeport-tcp-2".into())
        );
        let slots: Vec<String> = r
            .elements
            .iter()
            .filter(|((m, _), _)| *m == endpoints_map(Protocol::Tcp))
            .map(|((_, k), v)| format!("{k} : {v}"))
            .collect();
        assert_eq!(
            slots,
            vec![
                "10.96.0.10 . tcp . 80 . 0 : 10.244.1.2 . 8080",
                "10.96.0.10 . tcp . 80 . 1 : 10.244.2.2 . 8080",
            ]
        );
        assert_eq!(
            r.elements
                .keys()
                .filter(|(m, _)| *m == nodeport_endpoints_map(Protocol::Tcp))
                .count(),
            2
        );
        assert_eq!(r.hairpin.len(), 2);
        // The v6 cluster IP is not in the v4 rendering.
        assert!(!r
            .elements
            .keys()
            .any(|(_, k)| k.to_string().contains("fd00")));
    }

    #[test]
    fn internal_local_without_local_endpoints_drops() {
        let mut i = info();
        i.internal_local = true;
        let r = render_port(&ctx(), &spn(), &i, &[ep("10.244.2.2", "n2")]);
        assert_eq!(
            r.elements[&(SERVICE_IPS_MAP, dest("10.96.0.10"))],
            Value::Drop
        );
        assert!(!r
            .elements
            .keys()
            .any(|(m, _)| *m == endpoints_map(Protocol::Tcp)));
        // The NodePort is external traffic: every endpoint, not only local.
        let picks: Vec<String> = r.picks.iter().map(Pick::chain).collect();
        assert_eq!(picks, vec!["pick-nodeport-tcp-1"]);
        assert_eq!(
            r.elements
                .keys()
                .filter(|(m, _)| *m == nodeport_endpoints_map(Protocol::Tcp))
                .count(),
            1
        );
        // Without any external destination it still drops (not rejects).
        i.node_port = None;
        let r = render_port(&ctx(), &spn(), &i, &[ep("10.244.2.2", "n2")]);
        assert_eq!(
            r.elements[&(SERVICE_IPS_MAP, dest("10.96.0.10"))],
            Value::Drop
        );
        assert!(!r.elements.keys().any(|(m, _)| m.starts_with("no-endpoint")));
    }

    #[test]
    fn internal_local_does_not_narrow_external_traffic_with_own_chains() {
        let mut i = info();
        i.internal_local = true;
        i.affinity_timeout_s = Some(7);
        let r = render_port(
            &ctx(),
            &spn(),
            &i,
            &[ep("10.244.1.2", "n1"), ep("10.244.2.2", "n2")],
        );
        let svc = &r.chains[&chain_name("service", "ns/web/tcp/http")];
        assert!(!svc.iter().any(|rule| rule.contains("10.244.2.2")));
        let cluster = chain_name("cluster", "ns/web/tcp/http");
        let ext = &r.chains[&chain_name("external", "ns/web/tcp/http")];
        assert_eq!(ext.last(), Some(&goto(&cluster)));
        // Both endpoints' chains are picked from the cluster chain.
        let gotos = r.chains[&cluster]
            .iter()
            .filter(|rule| rule.contains("goto endpoint-"))
            .count();
        assert_eq!(gotos, 4, "{:?}", r.chains[&cluster]);
    }

    #[test]
    fn no_endpoints_rejects() {
        let r = render_port(&ctx(), &spn(), &info(), &[]);
        assert!(r.elements.keys().all(|(m, _)| m.starts_with("no-endpoint")));
        assert!(r
            .elements
            .values()
            .all(|v| v == &Value::Goto(REJECT_CHAIN.into())));
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

    /// Every part of a rendering as text, in a fixed order.
    fn dump(r: &Rendered) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        for (chain, rules) in &r.chains {
            writeln!(s, "chain {chain}").unwrap();
            for rule in rules {
                writeln!(s, "  {rule}").unwrap();
            }
        }
        for (set, timeout) in &r.sets {
            writeln!(s, "set {set} timeout {timeout}").unwrap();
        }
        for ((map, key), value) in &r.elements {
            writeln!(s, "element {map} {key} : {value}").unwrap();
        }
        for ip in &r.hairpin {
            writeln!(s, "hairpin {ip}").unwrap();
        }
        for pick in &r.picks {
            writeln!(s, "pick {}", pick.chain()).unwrap();
        }
        s
    }

    /// Models covering each way a service renders: shared (with external
    /// and load-balancer IPs, UDP, v6), rejecting, affinity, both traffic
    /// policies Local, terminating fallback, and no pod network known.
    fn pinned_models() -> Vec<(&'static str, Context, ServicePortInfo, Vec<Endpoint>)> {
        let two = vec![ep("10.244.1.2", "n1"), ep("10.244.2.2", "n2")];
        let mut shared = info();
        shared.external_ips = vec!["192.0.2.7".parse().unwrap()];
        shared.load_balancer_ips = vec![
            "198.51.100.9".parse().unwrap(),
            "2001:db8::9".parse().unwrap(),
        ];
        let mut udp = info();
        udp.protocol = Protocol::Udp;
        udp.node_port = None;
        let mut affinity = shared.clone();
        affinity.affinity_timeout_s = Some(10800);
        let mut affinity_internal_local = affinity.clone();
        affinity_internal_local.internal_local = true;
        let mut external_local = shared.clone();
        external_local.external_local = true;
        external_local.health_check_node_port = Some(31000);
        let mut terminating = ep("10.244.1.3", "n1");
        terminating.ready = false;
        terminating.terminating = true;
        let mut both_local = external_local.clone();
        both_local.internal_local = true;
        let mut v6 = ctx();
        v6.family = IpFamily::V6;
        v6.cluster_cidr = Some(("fd00:244::".parse().unwrap(), 48));
        let mut no_cidr = ctx();
        no_cidr.cluster_cidr = None;
        // The v4 endpoint must not appear in the v6 rendering.
        let v6_eps = vec![
            ep("fd00:244:1::2", "n1"),
            ep("10.244.1.2", "n1"),
            ep("fd00:244:2::2", "n2"),
        ];
        let mut internal_local = shared.clone();
        internal_local.internal_local = true;
        vec![
            ("shared", ctx(), shared.clone(), two.clone()),
            ("shared udp", ctx(), udp, two.clone()),
            ("shared reject", ctx(), shared.clone(), vec![]),
            (
                "shared internal local remote only",
                ctx(),
                internal_local,
                vec![ep("10.244.2.2", "n2")],
            ),
            ("shared v6", v6.clone(), shared.clone(), v6_eps.clone()),
            ("affinity", ctx(), affinity.clone(), two.clone()),
            ("affinity reject", ctx(), affinity.clone(), vec![]),
            (
                "affinity internal local",
                ctx(),
                affinity_internal_local,
                two.clone(),
            ),
            ("external local", ctx(), external_local.clone(), two.clone()),
            (
                "external local terminating",
                ctx(),
                external_local.clone(),
                vec![terminating, ep("10.244.2.2", "n2")],
            ),
            (
                "external local no cidr",
                no_cidr,
                external_local.clone(),
                two.clone(),
            ),
            ("external local v6", v6, external_local, v6_eps),
            (
                "both local remote only",
                ctx(),
                both_local,
                vec![ep("10.244.2.2", "n2")],
            ),
        ]
    }

    /// Pins the whole rendering of the models above, so that moving or
    /// restructuring this code is shown not to change what is programmed.
    #[test]
    fn rendering_is_pinned() {
        let mut got = String::new();
        for (name, ctx, info, eps) in pinned_models() {
            got.push_str(&format!("## {name}\n"));
            got.push_str(&dump(&render_port(&ctx, &spn(), &info, &eps)));
        }
        if got != include_str!("pinned.txt") {
            panic!("rendering changed; now:\n{got}");
        }
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
        assert_eq!(
            r.elements[&(SERVICE_IPS_MAP, dest("fd00::10"))],
            Value::Goto("pick-cluster-tcp-1".into())
        );
        let slot = Key::DestSlot {
            addr: "fd00::10".parse().unwrap(),
            proto: Protocol::Tcp,
            port: 80,
            slot: 0,
        };
        assert_eq!(
            r.elements[&(endpoints_map(Protocol::Tcp), slot)],
            Value::Target("fd00:244:1::2".parse().unwrap(), 8080)
        );
        assert_eq!(r.hairpin.len(), 1);
        assert!(r.hairpin.iter().all(|ip| ip.is_ipv6()));
    }
}
