//! The etcd keys a service's cluster IPs and node ports are claimed under
//! (`allocations/clusterips/<ip>`, `allocations/nodeports/<port>`), and which
//! of them a stored service holds. Names only: picking is `alloc`.

use std::collections::BTreeSet;

use serde_json::Value;

pub const IP_DIR: &str = "allocations/clusterips/";
pub const PORT_DIR: &str = "allocations/nodeports/";

pub fn ip_key(ip: &str) -> String {
    format!("{IP_DIR}{ip}")
}

pub fn port_key(port: i64) -> String {
    format!("{PORT_DIR}{port}")
}

/// The allocation keys a stored service holds.
pub fn held(obj: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Some(spec) = obj.get("spec") else {
        return out;
    };
    for ip in spec
        .get("clusterIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .chain(spec.get("clusterIP").and_then(Value::as_str))
    {
        if !ip.is_empty() && ip != "None" {
            out.insert(ip_key(ip));
        }
    }
    for p in spec
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(np) = p.get("nodePort").and_then(Value::as_i64) {
            out.insert(port_key(np));
        }
    }
    out
}
