//! The fixed part of the proxy's own table (`<family> capstan-proxy`): the
//! verdict maps, the base chains hooked into nat and filter, and the helper
//! chains every service jumps to. Services add only chains, sets and map
//! elements; nothing here knows about a particular service.

use std::net::IpAddr;

use serde_json::{json, Value};

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

/// Names every object of the table carries.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub family: IpFamily,
}

impl Table {
    pub fn new(family: IpFamily) -> Table {
        Table { family }
    }

    fn obj(&self, extra: Value) -> Value {
        let mut v = json!({"family": self.family.nft(), "table": TABLE});
        if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        v
    }

    pub fn table_obj(&self) -> Value {
        json!({"family": self.family.nft(), "name": TABLE})
    }

    pub fn chain(&self, name: &str) -> Value {
        self.obj(json!({"name": name}))
    }

    fn base_chain(&self, name: &str, kind: &str, hook: &str, prio: i32) -> Value {
        self.obj(
            json!({"name": name, "type": kind, "hook": hook, "prio": prio, "policy": "accept"}),
        )
    }

    /// `add rule` for a rule stored as JSON text (its expression list).
    pub fn add_rule_text(&self, chain: &str, expr: &str) -> String {
        format!(
            r#"{{"add":{{"rule":{{"family":{},"table":{},"chain":{},"expr":{expr}}}}}}}"#,
            json!(self.family.nft()),
            json!(TABLE),
            json!(chain),
        )
    }

    pub fn rule(&self, chain: &str, expr: Vec<Value>) -> Value {
        self.obj(json!({"chain": chain, "expr": expr}))
    }

    pub fn affinity_set(&self, name: &str, timeout_s: u32) -> Value {
        self.obj(json!({"name": name, "type": self.family.addr_type(),
            "flags": ["timeout"], "timeout": timeout_s}))
    }

    pub fn set_ref(&self, name: &str) -> Value {
        self.obj(json!({"name": name}))
    }

    /// Hairpin set elements for these endpoint addresses.
    pub fn hairpin_elements(&self, ips: &[IpAddr]) -> Value {
        let elems: Vec<Value> = ips
            .iter()
            .map(|ip| concat(vec![json!(ip.to_string()), json!(ip.to_string())]))
            .collect();
        self.obj(json!({"name": HAIRPIN_SET, "elem": elems}))
    }

    /// Map elements `[[key, verdict], ...]` for add/delete commands.
    pub fn elements(&self, map: &str, elems: Vec<Value>) -> Value {
        self.obj(json!({"name": map, "elem": elems}))
    }

    fn vmap_decl(&self, name: &str, key: Vec<&str>) -> Value {
        self.obj(json!({"name": name, "type": key, "map": "verdict"}))
    }

    fn loopback(&self) -> (IpAddr, u8) {
        match self.family {
            IpFamily::V4 => (IpAddr::from([127, 0, 0, 0]), 8),
            IpFamily::V6 => (IpAddr::from(std::net::Ipv6Addr::LOCALHOST), 128),
        }
    }

    /// The rules of the `services` chain: the dispatch every NATed packet
    /// goes through (also used to notice tampering).
    pub fn services_rules(&self) -> Vec<Vec<Value>> {
        let f = self.family;
        let (lo, lo_len) = self.loopback();
        vec![
            vec![vmap(
                concat(vec![daddr(f), l4proto(), th_dport()]),
                json!(format!("@{SERVICE_IPS_MAP}")),
            )],
            vec![
                eq(fib_type("daddr"), json!("local")),
                matches("!=", daddr(f), prefix(lo, lo_len)),
                vmap(
                    concat(vec![l4proto(), th_dport()]),
                    json!(format!("@{NODEPORTS_MAP}")),
                ),
            ],
        ]
    }

    /// Commands that create the skeleton in an empty table.
    pub fn skeleton(&self) -> Vec<Value> {
        let f = self.family;
        let addr = f.addr_type();
        let mut c = vec![
            cmd(
                "add",
                "map",
                self.vmap_decl(SERVICE_IPS_MAP, vec![addr, "inet_proto", "inet_service"]),
            ),
            cmd(
                "add",
                "map",
                self.vmap_decl(NODEPORTS_MAP, vec!["inet_proto", "inet_service"]),
            ),
            cmd(
                "add",
                "map",
                self.vmap_decl(
                    NO_ENDPOINT_SERVICES_MAP,
                    vec![addr, "inet_proto", "inet_service"],
                ),
            ),
            cmd(
                "add",
                "map",
                self.vmap_decl(
                    NO_ENDPOINT_NODEPORTS_MAP,
                    vec!["inet_proto", "inet_service"],
                ),
            ),
            cmd(
                "add",
                "set",
                self.obj(json!({"name": HAIRPIN_SET, "type": [addr, addr]})),
            ),
            cmd(
                "add",
                "chain",
                self.base_chain("nat-prerouting", "nat", "prerouting", -100),
            ),
            cmd(
                "add",
                "chain",
                self.base_chain("nat-output", "nat", "output", -100),
            ),
            cmd(
                "add",
                "chain",
                self.base_chain("nat-postrouting", "nat", "postrouting", 100),
            ),
            cmd(
                "add",
                "chain",
                self.base_chain("filter-input", "filter", "input", -110),
            ),
            cmd(
                "add",
                "chain",
                self.base_chain("filter-forward", "filter", "forward", -110),
            ),
            cmd(
                "add",
                "chain",
                self.base_chain("filter-output", "filter", "output", -110),
            ),
        ];
        for name in [
            SERVICES_CHAIN,
            ENDPOINTS_CHECK_CHAIN,
            MARK_FOR_MASQUERADE,
            MASQUERADING,
            REJECT_CHAIN,
        ] {
            c.push(cmd("add", "chain", self.chain(name)));
        }
        let mut rules: Vec<(&str, Vec<Value>)> = vec![
            ("nat-prerouting", vec![jump(SERVICES_CHAIN)]),
            ("nat-output", vec![jump(SERVICES_CHAIN)]),
            (
                "nat-postrouting",
                vec![
                    matches("in", json!({"ct": {"key": "status"}}), json!("dnat")),
                    in_set(concat(vec![saddr(f), daddr(f)]), HAIRPIN_SET),
                    jump(MARK_FOR_MASQUERADE),
                ],
            ),
            ("nat-postrouting", vec![jump(MASQUERADING)]),
        ];
        let ct_new = || matches("in", json!({"ct": {"key": "state"}}), json!("new"));
        for chain in ["filter-input", "filter-forward", "filter-output"] {
            rules.push((chain, vec![ct_new(), jump(ENDPOINTS_CHECK_CHAIN)]));
        }
        rules.push((
            ENDPOINTS_CHECK_CHAIN,
            vec![vmap(
                concat(vec![daddr(f), l4proto(), th_dport()]),
                json!(format!("@{NO_ENDPOINT_SERVICES_MAP}")),
            )],
        ));
        rules.push((
            ENDPOINTS_CHECK_CHAIN,
            vec![
                eq(fib_type("daddr"), json!("local")),
                vmap(
                    concat(vec![l4proto(), th_dport()]),
                    json!(format!("@{NO_ENDPOINT_NODEPORTS_MAP}")),
                ),
            ],
        ));
        for r in self.services_rules() {
            rules.push((SERVICES_CHAIN, r));
        }
        rules.push((
            MARK_FOR_MASQUERADE,
            vec![json!({"mangle": {"key": mark(), "value": {"|": [mark(), MASQUERADE_MARK]}}})],
        ));
        rules.push((
            MASQUERADING,
            vec![
                eq(json!({"&": [mark(), MASQUERADE_MARK]}), json!(0)),
                json!({"return": null}),
            ],
        ));
        rules.push((
            MASQUERADING,
            vec![json!({"mangle": {"key": mark(), "value": {"^": [mark(), MASQUERADE_MARK]}}})],
        ));
        rules.push((
            MASQUERADING,
            vec![json!({"masquerade": {"flags": "fully-random"}})],
        ));
        rules.push((
            REJECT_CHAIN,
            vec![
                eq(l4proto(), json!("tcp")),
                json!({"reject": {"type": "tcp reset"}}),
            ],
        ));
        rules.push((REJECT_CHAIN, vec![json!({"reject": null})]));
        for (chain, expr) in rules {
            c.push(cmd("add", "rule", self.rule(chain, expr)));
        }
        c
    }
}
