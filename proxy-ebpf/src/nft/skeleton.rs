//! The fixed part of the proxy's own table (`<family> capstan-proxy`): the
//! maps, the base chains hooked into nat and filter, the helper chains
//! every service jumps to, and the shared pick chains (one per kind of
//! destination and endpoint count). Services add map elements, and a few
//! of them chains and sets; nothing here knows about a particular service.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::expr::*;
use crate::model::{IpFamily, Protocol};

pub const TABLE: &str = "capstan-proxy";
pub const SERVICE_IPS_MAP: &str = "service-ips";
pub const NODEPORTS_MAP: &str = "service-nodeports";
pub const NO_ENDPOINT_SERVICES_MAP: &str = "no-endpoint-services";
pub const NO_ENDPOINT_NODEPORTS_MAP: &str = "no-endpoint-nodeports";
/// Endpoint slots of a destination, one map per protocol:
/// `addr . proto . port . slot : addr . port`.
pub fn endpoints_map(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "endpoints-tcp",
        Protocol::Udp => "endpoints-udp",
        Protocol::Sctp => "endpoints-sctp",
    }
}

/// Endpoint slots of a NodePort, one map per protocol:
/// `proto . port . slot : addr . port`.
pub fn nodeport_endpoints_map(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "nodeport-endpoints-tcp",
        Protocol::Udp => "nodeport-endpoints-udp",
        Protocol::Sctp => "nodeport-endpoints-sctp",
    }
}

const PROTOCOLS: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];
pub const SERVICES_CHAIN: &str = "services";
pub const ENDPOINTS_CHECK_CHAIN: &str = "endpoints-check";
pub const MARK_FOR_MASQUERADE: &str = "mark-for-masquerade";
pub const MASQUERADING: &str = "masquerading";
pub const REJECT_CHAIN: &str = "reject-chain";
/// `endpoint . endpoint` pairs: a DNATed packet from an endpoint to
/// itself (a pod reaching its own service) is masqueraded.
pub const HAIRPIN_SET: &str = "hairpin";
/// The packet mark bit that asks postrouting to masquerade (kube-proxy's).
pub const MASQUERADE_MARK: u32 = 0x4000;

/// Which destinations a pick chain serves: they differ in when they
/// masquerade and which endpoint map they read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PickKind {
    /// ClusterIPs: masquerade only clients outside the pod network.
    Cluster,
    /// External and load-balancer IPs (externalTrafficPolicy Cluster):
    /// always masquerade.
    External,
    /// NodePorts (externalTrafficPolicy Cluster): always masquerade.
    NodePort,
}

/// A shared chain choosing uniformly among `n` endpoint slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pick {
    pub kind: PickKind,
    pub proto: Protocol,
    pub n: usize,
}

impl Pick {
    pub fn chain(&self) -> String {
        let kind = match self.kind {
            PickKind::Cluster => "cluster",
            PickKind::External => "external",
            PickKind::NodePort => "nodeport",
        };
        format!("pick-{kind}-{}-{}", self.proto.nft(), self.n)
    }

    /// Whether `chain` is a pick chain's name.
    pub fn is_pick_chain(chain: &str) -> bool {
        chain.starts_with("pick-")
    }
}

/// Every chain of the skeleton.
pub const FIXED_CHAINS: [&str; 11] = [
    "nat-prerouting",
    "nat-output",
    "nat-postrouting",
    "filter-input",
    "filter-forward",
    "filter-output",
    SERVICES_CHAIN,
    ENDPOINTS_CHECK_CHAIN,
    MARK_FOR_MASQUERADE,
    MASQUERADING,
    REJECT_CHAIN,
];

/// Every map and set of the skeleton.
pub const FIXED_SETS: [&str; 11] = [
    SERVICE_IPS_MAP,
    NODEPORTS_MAP,
    NO_ENDPOINT_SERVICES_MAP,
    NO_ENDPOINT_NODEPORTS_MAP,
    HAIRPIN_SET,
    "endpoints-tcp",
    "endpoints-udp",
    "endpoints-sctp",
    "nodeport-endpoints-tcp",
    "nodeport-endpoints-udp",
    "nodeport-endpoints-sctp",
];

/// Names every object of the table carries; builds its commands as nft
/// text, one command per line.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub family: IpFamily,
}

impl Table {
    pub fn new(family: IpFamily) -> Table {
        Table { family }
    }

    /// `<family> capstan-proxy`, the prefix of every object.
    pub fn id(&self) -> String {
        format!("{} {TABLE}", self.family.nft())
    }

    /// `<verb> <kind> <family> capstan-proxy <rest>`.
    pub fn cmd(&self, verb: &str, kind: &str, rest: &str) -> String {
        let mut s = String::with_capacity(40 + rest.len());
        let _ = write!(s, "{verb} {kind} {} {TABLE}", self.family.nft());
        if !rest.is_empty() {
            s.push(' ');
            s.push_str(rest);
        }
        s
    }

    pub fn add_rule(&self, chain: &str, rule: &str) -> String {
        let mut s = String::with_capacity(32 + chain.len() + rule.len());
        let _ = write!(s, "add rule {} {TABLE} {chain} {rule}", self.family.nft());
        s
    }

    pub fn affinity_set(&self, name: &str, timeout_s: u32) -> String {
        self.cmd(
            "add",
            "set",
            &format!(
                "{name} {{ type {}; size 65535; flags dynamic,timeout; timeout {timeout_s}s; }}",
                self.family.addr_type()
            ),
        )
    }

    fn loopback(&self) -> String {
        match self.family {
            IpFamily::V4 => "127.0.0.0/8".into(),
            IpFamily::V6 => "::1".into(),
        }
    }

    /// The rules of a pick chain: masquerade as its kind asks, then DNAT
    /// to the slot `numgen` draws. The destination (or NodePort) and the
    /// slot key the endpoint map, so one chain serves every service with
    /// `n` endpoints, and endpoint changes are element changes.
    pub fn pick_rules(&self, pick: &Pick, cluster_cidr: Option<(IpAddr, u8)>) -> Vec<String> {
        let f = self.family;
        let fam = f.nft();
        let slot = format!("numgen random mod {}", pick.n);
        let mut rules = Vec::new();
        match pick.kind {
            PickKind::Cluster => {
                if let Some((net, len)) = cluster_cidr {
                    rules.push(rule(&[
                        &format!("{} != {}", saddr(f), prefix(net, len)),
                        &jump(MARK_FOR_MASQUERADE),
                    ]));
                }
            }
            PickKind::External | PickKind::NodePort => rules.push(jump(MARK_FOR_MASQUERADE)),
        }
        let dnat = match pick.kind {
            PickKind::Cluster | PickKind::External => format!(
                "dnat {fam} to {} map @{}",
                concat(&[&daddr(f), L4PROTO, TH_DPORT, &slot]),
                endpoints_map(pick.proto)
            ),
            PickKind::NodePort => format!(
                "dnat {fam} to {} map @{}",
                concat(&[L4PROTO, TH_DPORT, &slot]),
                nodeport_endpoints_map(pick.proto)
            ),
        };
        rules.push(dnat);
        rules
    }

    /// The rules of the `services` chain: the dispatch every NATed packet
    /// goes through.
    pub fn services_rules(&self) -> Vec<String> {
        let f = self.family;
        vec![
            vmap(&concat(&[&daddr(f), L4PROTO, TH_DPORT]), SERVICE_IPS_MAP),
            rule(&[
                &fib_local("daddr"),
                &format!("{} != {}", daddr(f), self.loopback()),
                &vmap(&concat(&[L4PROTO, TH_DPORT]), NODEPORTS_MAP),
            ]),
        ]
    }

    /// Commands that create the skeleton, or restore it in a table that
    /// has it already (every add is idempotent, every fixed chain is
    /// flushed and refilled): what a full sync runs before reloading the
    /// elements, without taking anything away from traffic in between.
    pub fn skeleton(&self) -> Vec<String> {
        let f = self.family;
        let fam = f.nft();
        let addr = f.addr_type();
        let ip_key = format!("{addr} . inet_proto . inet_service");
        let np_key = "inet_proto . inet_service";
        let mut c = vec![
            self.cmd("add", "table", ""),
            self.cmd(
                "add",
                "map",
                &format!("{SERVICE_IPS_MAP} {{ type {ip_key} : verdict; }}"),
            ),
            self.cmd(
                "add",
                "map",
                &format!("{NODEPORTS_MAP} {{ type {np_key} : verdict; }}"),
            ),
            self.cmd(
                "add",
                "map",
                &format!("{NO_ENDPOINT_SERVICES_MAP} {{ type {ip_key} : verdict; }}"),
            ),
            self.cmd(
                "add",
                "map",
                &format!("{NO_ENDPOINT_NODEPORTS_MAP} {{ type {np_key} : verdict; }}"),
            ),
            self.cmd(
                "add",
                "set",
                &format!("{HAIRPIN_SET} {{ type {addr} . {addr}; }}"),
            ),
        ];
        // typeof: the slot is numgen's 32-bit host-order integer. One map
        // per protocol because the value's port must be typed `<proto>
        // dport` (which makes nft add the matching `meta l4proto` check):
        // nft 1.0.6 cannot read a `th dport` value type back from the
        // kernel ("conflicting protocols specified: ip vs. th").
        for p in PROTOCOLS {
            let value = format!("{fam} daddr . {} dport", p.nft());
            c.push(self.cmd(
                "add",
                "map",
                &format!(
                    "{} {{ typeof {fam} daddr . meta l4proto . th dport . numgen random mod 1 : {value}; }}",
                    endpoints_map(p)
                ),
            ));
            c.push(self.cmd(
                "add",
                "map",
                &format!(
                    "{} {{ typeof meta l4proto . th dport . numgen random mod 1 : {value}; }}",
                    nodeport_endpoints_map(p)
                ),
            ));
        }
        for (name, kind, hook, prio) in [
            ("nat-prerouting", "nat", "prerouting", -100),
            ("nat-output", "nat", "output", -100),
            ("nat-postrouting", "nat", "postrouting", 100),
            ("filter-input", "filter", "input", -110),
            ("filter-forward", "filter", "forward", -110),
            ("filter-output", "filter", "output", -110),
        ] {
            c.push(self.cmd(
                "add",
                "chain",
                &format!("{name} {{ type {kind} hook {hook} priority {prio}; policy accept; }}"),
            ));
        }
        for name in [
            SERVICES_CHAIN,
            ENDPOINTS_CHECK_CHAIN,
            MARK_FOR_MASQUERADE,
            MASQUERADING,
            REJECT_CHAIN,
        ] {
            c.push(self.cmd("add", "chain", name));
        }
        for name in FIXED_CHAINS {
            c.push(self.cmd("flush", "chain", name));
        }
        let mut rules: Vec<(&str, String)> = vec![
            ("nat-prerouting", jump(SERVICES_CHAIN)),
            ("nat-output", jump(SERVICES_CHAIN)),
            (
                "nat-postrouting",
                rule(&[
                    "ct status dnat",
                    &in_set(&concat(&[&saddr(f), &daddr(f)]), HAIRPIN_SET),
                    &jump(MARK_FOR_MASQUERADE),
                ]),
            ),
            ("nat-postrouting", jump(MASQUERADING)),
        ];
        for chain in ["filter-input", "filter-forward", "filter-output"] {
            rules.push((chain, rule(&["ct state new", &jump(ENDPOINTS_CHECK_CHAIN)])));
        }
        rules.push((
            ENDPOINTS_CHECK_CHAIN,
            vmap(
                &concat(&[&daddr(f), L4PROTO, TH_DPORT]),
                NO_ENDPOINT_SERVICES_MAP,
            ),
        ));
        rules.push((
            ENDPOINTS_CHECK_CHAIN,
            rule(&[
                &fib_local("daddr"),
                &vmap(&concat(&[L4PROTO, TH_DPORT]), NO_ENDPOINT_NODEPORTS_MAP),
            ]),
        ));
        for r in self.services_rules() {
            rules.push((SERVICES_CHAIN, r));
        }
        let mark = format!("{MASQUERADE_MARK:#x}");
        rules.push((
            MARK_FOR_MASQUERADE,
            format!("meta mark set meta mark | {mark}"),
        ));
        rules.push((MASQUERADING, format!("meta mark & {mark} == 0 return")));
        rules.push((MASQUERADING, format!("meta mark set meta mark ^ {mark}")));
        rules.push((MASQUERADING, "masquerade fully-random".into()));
        rules.push((
            REJECT_CHAIN,
            rule(&[L4PROTO, "tcp", "reject with tcp reset"]),
        ));
        rules.push((REJECT_CHAIN, "reject".into()));
        for (chain, r) in rules {
            c.push(self.add_rule(chain, &r));
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skeleton_is_text_commands_for_the_table() {
        let t = Table::new(IpFamily::V6);
        let s = t.skeleton();
        assert!(s.iter().all(|c| c.contains(" ip6 capstan-proxy")), "{s:?}");
        assert!(s.contains(&t.add_rule(
            SERVICES_CHAIN,
            "fib daddr type local ip6 daddr != ::1 meta l4proto . th dport vmap @service-nodeports"
        )));
        assert!(s.contains(&t.cmd("add", "set", "hairpin { type ipv6_addr . ipv6_addr; }")));
        for p in PROTOCOLS {
            for m in [endpoints_map(p), nodeport_endpoints_map(p)] {
                assert!(FIXED_SETS.contains(&m));
                assert!(s.iter().any(|c| c.starts_with(&t.cmd("add", "map", m))));
            }
        }
    }
}
