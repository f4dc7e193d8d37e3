//! The fixed part of the proxy's own table (`<family> capstan-proxy`): the
//! verdict maps, the base chains hooked into nat and filter, and the helper
//! chains every service jumps to. Services add only chains, sets and map
//! elements; nothing here knows about a particular service.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::expr::*;
use crate::model::IpFamily;

pub const TABLE: &str = "capstan-proxy";
pub const SERVICE_IPS_MAP: &str = "service-ips";
pub const NODEPORTS_MAP: &str = "service-nodeports";
pub const NO_ENDPOINT_SERVICES_MAP: &str = "no-endpoint-services";
pub const NO_ENDPOINT_NODEPORTS_MAP: &str = "no-endpoint-nodeports";
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
                "{name} {{ type {}; flags timeout; timeout {timeout_s}s; }}",
                self.family.addr_type()
            ),
        )
    }

    /// `<verb> element ... <set> { a, b, ... }`; None when there is none.
    pub fn elements<I, S>(&self, verb: &str, set: &str, elems: I) -> Option<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut s = self.cmd(verb, "element", set);
        s.push_str(" { ");
        let mut any = false;
        for e in elems {
            if any {
                s.push_str(", ");
            }
            s.push_str(e.as_ref());
            any = true;
        }
        s.push_str(" }");
        any.then_some(s)
    }

    /// A hairpin set element for this endpoint address.
    pub fn hairpin_element(ip: &IpAddr) -> String {
        format!("{ip} . {ip}")
    }

    fn loopback(&self) -> String {
        match self.family {
            IpFamily::V4 => "127.0.0.0/8".into(),
            IpFamily::V6 => "::1".into(),
        }
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

    /// Whether `nft list chain <table> services` shows the dispatch this
    /// skeleton wrote (someone flushing or editing it breaks Services).
    pub fn services_listing_intact(&self, listing: &str) -> bool {
        let rules: Vec<&str> = listing
            .lines()
            .map(str::trim)
            .filter(|l| {
                !l.is_empty() && !l.starts_with("table") && !l.starts_with("chain") && *l != "}"
            })
            .collect();
        rules.len() == 2
            && rules[0].ends_with(&format!("vmap @{SERVICE_IPS_MAP}"))
            && rules[1].ends_with(&format!("vmap @{NODEPORTS_MAP}"))
    }

    /// Commands that create the skeleton in an empty table.
    pub fn skeleton(&self) -> Vec<String> {
        let f = self.family;
        let addr = f.addr_type();
        let ip_key = format!("{addr} . inet_proto . inet_service");
        let np_key = "inet_proto . inet_service";
        let mut c = vec![
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
    }

    #[test]
    fn tamper_check_reads_the_listing() {
        let t = Table::new(IpFamily::V4);
        let ok = "table ip capstan-proxy {\n\tchain services {\n\t\tip daddr . meta l4proto . th dport vmap @service-ips\n\t\tfib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports\n\t}\n}\n";
        assert!(t.services_listing_intact(ok));
        let flushed = "table ip capstan-proxy {\n\tchain services {\n\t}\n}\n";
        assert!(!t.services_listing_intact(flushed));
        assert!(!t.services_listing_intact(""));
    }

    #[test]
    fn element_lists() {
        let t = Table::new(IpFamily::V4);
        assert_eq!(
            t.elements(
                "add",
                HAIRPIN_SET,
                ["1.2.3.4 . 1.2.3.4", "5.6.7.8 . 5.6.7.8"]
            ),
            Some(
                "add element ip capstan-proxy hairpin { 1.2.3.4 . 1.2.3.4, 5.6.7.8 . 5.6.7.8 }"
                    .into()
            )
        );
        assert_eq!(
            t.elements("delete", HAIRPIN_SET, Vec::<String>::new()),
            None
        );
    }
}
