//! Builders for the nft JSON expressions and commands the proxy uses. Pure;
//! they must never decide policy (that is render.rs).

use std::net::IpAddr;

use serde_json::{json, Value};

use crate::model::IpFamily;

pub fn payload(protocol: &str, field: &str) -> Value {
    json!({"payload": {"protocol": protocol, "field": field}})
}

pub fn saddr(f: IpFamily) -> Value {
    payload(f.nft(), "saddr")
}

pub fn daddr(f: IpFamily) -> Value {
    payload(f.nft(), "daddr")
}

pub fn l4proto() -> Value {
    json!({"meta": {"key": "l4proto"}})
}

pub fn th_dport() -> Value {
    payload("th", "dport")
}

pub fn mark() -> Value {
    json!({"meta": {"key": "mark"}})
}

pub fn matches(op: &str, left: Value, right: Value) -> Value {
    json!({"match": {"op": op, "left": left, "right": right}})
}

pub fn eq(left: Value, right: Value) -> Value {
    matches("==", left, right)
}

pub fn prefix(addr: IpAddr, len: u8) -> Value {
    json!({"prefix": {"addr": addr.to_string(), "len": len}})
}

pub fn fib_type(flag: &str) -> Value {
    json!({"fib": {"result": "type", "flags": [flag]}})
}

pub fn concat(items: Vec<Value>) -> Value {
    json!({"concat": items})
}

pub fn jump(chain: &str) -> Value {
    json!({"jump": {"target": chain}})
}

pub fn goto(chain: &str) -> Value {
    json!({"goto": {"target": chain}})
}

pub fn vmap(key: Value, data: Value) -> Value {
    json!({"vmap": {"key": key, "data": data}})
}

/// `numgen random mod n`.
pub fn numgen(n: usize) -> Value {
    json!({"numgen": {"mode": "random", "mod": n, "offset": 0}})
}

/// `numgen random mod N vmap { 0 : goto c0, ... }` (an anonymous set: avoid
/// per service, the kernel allocates set names by a linear scan).
pub fn numgen_goto(chains: &[String]) -> Value {
    let set: Vec<Value> = chains
        .iter()
        .enumerate()
        .map(|(i, c)| json!([i, goto(c)]))
        .collect();
    vmap(
        json!({"numgen": {"mode": "random", "mod": chains.len(), "offset": 0}}),
        json!({"set": set}),
    )
}

pub fn dnat(addr: IpAddr, port: u16) -> Value {
    json!({"dnat": {"addr": addr.to_string(), "port": port}})
}

/// `update @set { <key> }`: refreshes an element's timeout.
pub fn set_update(set: &str, key: Value) -> Value {
    json!({"set": {"op": "update", "elem": key, "set": format!("@{set}")}})
}

pub fn in_set(key: Value, set: &str) -> Value {
    eq(key, Value::String(format!("@{set}")))
}

/// A command wrapper: `{"add": {"rule": {...}}}` and friends.
pub fn cmd(verb: &str, kind: &str, body: Value) -> Value {
    json!({ verb: { kind: body } })
}
