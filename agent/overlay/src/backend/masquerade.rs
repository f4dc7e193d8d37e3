//! Masquerade for pod traffic leaving the cluster network, in the agent's
//! own nftables tables `ip capstan-overlay` and, with an IPv6 network,
//! `ip6 capstan-overlay` (one nat postrouting chain each). A table is
//! replaced in one atomic nft transaction only when it differs; this module
//! never touches any other table.

use ipnetwork::IpNetwork;
use serde_json::{json, Value};

pub const TABLE: &str = "capstan-overlay";
const CHAIN: &str = "postrouting";

#[derive(Debug, thiserror::Error)]
pub enum MasqError {
    #[error("apply nftables table {family} {TABLE}: {message}")]
    Apply {
        family: &'static str,
        message: String,
    },
    #[error("delete nftables table {family} {TABLE}: {message}")]
    Delete {
        family: &'static str,
        message: String,
    },
    #[error("cluster network {network} and node subnet {subnet} are not one address family")]
    Families {
        network: IpNetwork,
        subnet: IpNetwork,
    },
}

/// The nftables family (also the payload protocol) of a network.
fn family(n: IpNetwork) -> &'static str {
    if n.is_ipv4() {
        "ip"
    } else {
        "ip6"
    }
}

fn multicast(n: IpNetwork) -> Value {
    if n.is_ipv4() {
        json!({"prefix": {"addr": "224.0.0.0", "len": 4}})
    } else {
        json!({"prefix": {"addr": "ff00::", "len": 8}})
    }
}

/// The rules, in order, as nft JSON expressions (flannel's set):
/// pod → pod: leave alone; pod → outside (not multicast): masquerade;
/// outside → this node's pods: leave alone; outside → other nodes' pods:
/// masquerade so replies come back through this node.
pub fn rules(network: IpNetwork, subnet: IpNetwork) -> Vec<Value> {
    let proto = family(network);
    let prefix =
        |n: IpNetwork| json!({"prefix": {"addr": n.network().to_string(), "len": n.prefix()}});
    let m = |field: &str, op: &str, right: Value| json!({"match": {"op": op, "left": {"payload": {"protocol": proto, "field": field}}, "right": right}});
    let masq = json!({"masquerade": {"flags": ["fully-random"]}});
    vec![
        json!([m("saddr", "==", prefix(network)), m("daddr", "==", prefix(network)), {"return": null}]),
        json!([
            m("saddr", "==", prefix(network)),
            m("daddr", "!=", multicast(network)),
            masq.clone()
        ]),
        json!([m("saddr", "!=", prefix(network)), m("daddr", "==", prefix(subnet)), {"return": null}]),
        json!([
            m("saddr", "!=", prefix(network)),
            m("daddr", "==", prefix(network)),
            masq
        ]),
    ]
}

/// A short fingerprint of the rules, stored as each rule's comment so the
/// table can be compared without parsing nft's normalised output.
fn fingerprint(rules: &[Value]) -> String {
    // FNV-1a over the JSON text: stable, dependency-free.
    let text = serde_json::to_string(rules).unwrap_or_default();
    let mut h: u64 = 0xcbf29ce484222325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("capstan-overlay {h:016x}")
}

/// The nft JSON batch that (re)creates the table atomically.
pub fn batch(network: IpNetwork, subnet: IpNetwork) -> Value {
    let f = family(network);
    let rules = rules(network, subnet);
    let comment = fingerprint(&rules);
    let mut cmds = vec![
        json!({"add": {"table": {"family": f, "name": TABLE}}}),
        json!({"flush": {"table": {"family": f, "name": TABLE}}}),
        json!({"add": {"chain": {"family": f, "table": TABLE, "name": CHAIN,
            "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}}),
    ];
    for expr in rules {
        cmds.push(
            json!({"add": {"rule": {"family": f, "table": TABLE, "chain": CHAIN,
            "expr": expr, "comment": comment}}}),
        );
    }
    json!({"nftables": cmds})
}

/// True when the live table already holds exactly these rules.
fn is_current(live: &Value, want_comment: &str, want_rules: usize) -> bool {
    let Some(items) = live.get("nftables").and_then(Value::as_array) else {
        return false;
    };
    let comments: Vec<&str> = items
        .iter()
        .filter_map(|i| i.get("rule"))
        .filter_map(|r| r.get("comment").and_then(Value::as_str))
        .collect();
    comments.len() == want_rules && comments.iter().all(|c| *c == want_comment)
}

/// Makes the table of the network's family match; does nothing when it
/// already does.
pub fn ensure(network: IpNetwork, subnet: IpNetwork) -> Result<bool, MasqError> {
    if network.is_ipv4() != subnet.is_ipv4() {
        return Err(MasqError::Families { network, subnet });
    }
    let f = family(network);
    let rules = rules(network, subnet);
    let comment = fingerprint(&rules);
    let live = nftables::helper::get_current_ruleset_raw(
        nftables::helper::DEFAULT_NFT,
        ["list", "table", f, TABLE],
    )
    .ok()
    .and_then(|s| serde_json::from_str::<Value>(&s).ok());
    if live
        .as_ref()
        .is_some_and(|l| is_current(l, &comment, rules.len()))
    {
        return Ok(false);
    }
    let text = batch(network, subnet).to_string();
    nftables::helper::apply_ruleset_raw(
        &text,
        nftables::helper::DEFAULT_NFT,
        nftables::helper::DEFAULT_ARGS,
    )
    .map_err(|e| MasqError::Apply {
        family: f,
        message: e.to_string(),
    })?;
    Ok(true)
}

/// Removes the table of one family (ipMasq switched off, or no IPv6
/// network any more); absent is fine.
pub fn remove(family: &'static str) -> Result<(), MasqError> {
    let exists = nftables::helper::get_current_ruleset_raw(
        nftables::helper::DEFAULT_NFT,
        ["list", "table", family, TABLE],
    )
    .is_ok();
    if !exists {
        return Ok(());
    }
    let text =
        json!({"nftables": [{"delete": {"table": {"family": family, "name": TABLE}}}]}).to_string();
    nftables::helper::apply_ruleset_raw(
        &text,
        nftables::helper::DEFAULT_NFT,
        nftables::helper::DEFAULT_ARGS,
    )
    .map(|_| ())
    .map_err(|e| MasqError::Delete {
        family,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_table_masquerades_ipv6_except_multicast() {
        let b = batch(
            "fd00:10:244::/56".parse().unwrap(),
            "fd00:10:244:1::/64".parse().unwrap(),
        );
        let cmds = b["nftables"].as_array().unwrap();
        assert_eq!(cmds[0]["add"]["table"]["family"], "ip6");
        let text = b.to_string();
        assert!(text.contains(r#""protocol":"ip6""#) && !text.contains(r#""protocol":"ip""#));
        assert!(text.contains("ff00::") && !text.contains("224.0.0.0"));
        assert!(matches!(
            ensure(
                "10.244.0.0/16".parse().unwrap(),
                "fd00:10:244:1::/64".parse().unwrap()
            ),
            Err(MasqError::Families { .. })
        ));
    }

    #[test]
    fn batch_owns_one_table_and_is_fingerprinted() {
        let b = batch(
            "10.244.0.0/16".parse().unwrap(),
            "10.244.1.0/24".parse().unwrap(),
        );
        let cmds = b["nftables"].as_array().unwrap();
        assert_eq!(cmds.len(), 3 + 4);
        for c in cmds {
            let obj = c.as_object().unwrap().values().next().unwrap();
            let inner = obj.as_object().unwrap().values().next().unwrap();
            let table = inner.get("table").or(inner.get("name")).unwrap();
            assert!(table == TABLE, "{c}");
        }
        let comment = cmds[3]["add"]["rule"]["comment"]
            .as_str()
            .unwrap()
            .to_string();
        let live = json!({"nftables": [
            {"metainfo": {}}, {"table": {}}, {"chain": {}},
            {"rule": {"comment": comment}}, {"rule": {"comment": comment}},
            {"rule": {"comment": comment}}, {"rule": {"comment": comment}}]});
        assert!(is_current(&live, &comment, 4));
        let other = batch(
            "10.245.0.0/16".parse().unwrap(),
            "10.245.1.0/24".parse().unwrap(),
        );
        let other_comment = other["nftables"][3]["add"]["rule"]["comment"]
            .as_str()
            .unwrap();
        assert!(!is_current(&live, other_comment, 4));
    }
}
