//! The allocation plan for a Service's cluster IPs (from `--service-cidr`)
//! and node ports (from the node-port range). An allocation is an etcd key
//! claimed in the same transaction that writes the service, so a restart
//! derives nothing and concurrent creates cannot both win. This file plans;
//! the REST layer commits.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

use ipnetwork::Ipv4Network;
use rand::Rng;
use serde_json::{json, Value};

use super::keys::{held, ip_key, port_key};
use super::spec::{set_default, type_of};
use crate::status::Cause;

#[derive(Clone, Debug)]
pub struct Ranges {
    pub cidr: Ipv4Network,
    pub node_ports: RangeInclusive<u16>,
}

/// One allocation key a write must take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// Relative to the storage prefix.
    pub key: String,
    /// Asked for by the client (a clash is 422), not picked by us (a clash
    /// means a concurrent create won: pick again).
    pub explicit: bool,
    pub field: String,
    pub value: String,
}

/// Fills `clusterIP(s)` and node ports into `spec` and says which keys to
/// claim. `old` is the stored service on update; `taken_*` are keys held
/// by anyone (ours included: they are skipped by comparing with `old`).
pub fn allocate(
    spec: &mut Value,
    old: Option<&Value>,
    ranges: &Ranges,
    taken_ips: &HashSet<Ipv4Addr>,
    taken_ports: &HashSet<i64>,
) -> Result<Vec<Claim>, Vec<Cause>> {
    let mut claims = Vec::new();
    let mut errors = Vec::new();
    let old_spec = old.and_then(|o| o.get("spec"));
    let ours = old.map(held).unwrap_or_default();
    let ty = type_of(spec).to_string();

    // Cluster IP.
    let old_ip = old_spec
        .and_then(|s| s.get("clusterIP"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let asked = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if ty == "ExternalName" {
        if !asked.is_empty() && asked != "None" {
            errors.push(Cause::forbidden(
                "spec.clusterIP",
                "may not be set for ExternalName services",
            ));
        }
    } else if old.is_some() && !old_ip.is_empty() {
        if asked.is_empty() || asked == old_ip {
            spec["clusterIP"] = json!(old_ip);
            spec["clusterIPs"] = json!([old_ip]);
        } else {
            errors.push(Cause::invalid(
                "spec.clusterIPs[0]",
                &asked,
                "may not change once set",
            ));
        }
    } else if asked == "None" {
        spec["clusterIPs"] = json!(["None"]);
    } else if asked.is_empty() {
        match pick_ip(ranges, taken_ips) {
            Some(ip) => {
                let s = ip.to_string();
                spec["clusterIP"] = json!(s);
                spec["clusterIPs"] = json!([s]);
                claims.push(Claim {
                    key: ip_key(&s),
                    explicit: false,
                    field: "spec.clusterIPs[0]".into(),
                    value: s,
                });
            }
            None => errors.push(Cause::invalid(
                "spec.clusterIPs",
                "",
                &format!("failed to allocate IP: range {} is full", ranges.cidr),
            )),
        }
    } else {
        match asked.parse::<Ipv4Addr>() {
            Err(_) => errors.push(Cause::invalid("spec.clusterIPs[0]", &asked, "must be a valid IP address")),
            Ok(ip) if !ranges.cidr.contains(ip) || ip == ranges.cidr.network() || ip == ranges.cidr.broadcast() => {
                errors.push(Cause::invalid(
                    "spec.clusterIPs",
                    format!("[\"{asked}\"]"),
                    &format!("failed to allocate IP {asked}: the provided IP ({asked}) is not in the valid range. The range of valid IPs is {}", ranges.cidr),
                ))
            }
            Ok(ip) if taken_ips.contains(&ip) && !ours.contains(&ip_key(&asked)) => {
                errors.push(Cause::invalid(
                    "spec.clusterIPs",
                    format!("[\"{asked}\"]"),
                    &format!("failed to allocate IP {asked}: provided IP is already allocated"),
                ))
            }
            Ok(_) => {
                spec["clusterIPs"] = json!([asked]);
                if !ours.contains(&ip_key(&asked)) {
                    claims.push(Claim {
                        key: ip_key(&asked),
                        explicit: true,
                        field: "spec.clusterIPs".into(),
                        value: asked.clone(),
                    });
                }
            }
        }
    }
    if ty != "ExternalName" {
        spec["ipFamilies"] = json!(["IPv4"]);
        set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
    }

    // Node ports.
    if ty == "NodePort" || ty == "LoadBalancer" {
        let old_ports: Vec<(i64, String, i64)> = old_spec
            .and_then(|s| s.get("ports"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| {
                Some((
                    p.get("port")?.as_i64()?,
                    p.get("protocol")
                        .and_then(Value::as_str)
                        .unwrap_or("TCP")
                        .to_string(),
                    p.get("nodePort")?.as_i64()?,
                ))
            })
            .collect();
        let mut in_this: HashSet<i64> = HashSet::new();
        let n = spec
            .get("ports")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        for i in 0..n {
            let p = &spec["ports"][i];
            let field = format!("spec.ports[{i}].nodePort");
            let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
            let proto = p
                .get("protocol")
                .and_then(Value::as_str)
                .unwrap_or("TCP")
                .to_string();
            let chosen = match p.get("nodePort").and_then(Value::as_i64) {
                Some(np) => {
                    let mine = ours.contains(&port_key(np)) || in_this.contains(&np);
                    if np < i64::from(*ranges.node_ports.start())
                        || np > i64::from(*ranges.node_ports.end())
                    {
                        errors.push(Cause::invalid(&field, np, &format!(
                            "provided port is not in the valid range. The range of valid ports is {}-{}",
                            ranges.node_ports.start(), ranges.node_ports.end())));
                        continue;
                    }
                    if !mine && taken_ports.contains(&np) {
                        errors.push(Cause::invalid(
                            &field,
                            np,
                            "provided port is already allocated",
                        ));
                        continue;
                    }
                    if !mine {
                        claims.push(Claim {
                            key: port_key(np),
                            explicit: true,
                            field: field.clone(),
                            value: np.to_string(),
                        });
                    }
                    np
                }
                None => {
                    let reuse = old_ports
                        .iter()
                        .find(|(op, opr, _)| *op == port && *opr == proto)
                        .map(|(_, _, np)| *np);
                    match reuse {
                        Some(np) => np,
                        None => {
                            let mut avoid = taken_ports.clone();
                            avoid.extend(in_this.iter().copied());
                            match pick_port(ranges, &avoid) {
                                Some(np) => {
                                    claims.push(Claim {
                                        key: port_key(np),
                                        explicit: false,
                                        field: field.clone(),
                                        value: np.to_string(),
                                    });
                                    np
                                }
                                None => {
                                    errors.push(Cause::invalid(
                                        &field,
                                        "",
                                        "failed to allocate a node port: range is full",
                                    ));
                                    continue;
                                }
                            }
                        }
                    }
                }
            };
            in_this.insert(chosen);
            spec["ports"][i]["nodePort"] = json!(chosen);
        }
    } else if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        // Leaving NodePort/LoadBalancer releases the ports (the caller
        // computes releases from what the old object held).
        for p in ports {
            if let Some(o) = p.as_object_mut() {
                o.remove("nodePort");
            }
        }
    }
    // The same node port for TCP and UDP of one service is one claim.
    claims.dedup_by(|a, b| a.key == b.key);
    if errors.is_empty() {
        Ok(claims)
    } else {
        Err(errors)
    }
}

fn pick_ip(ranges: &Ranges, taken: &HashSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    let base = u32::from(ranges.cidr.network());
    let size = ranges.cidr.size();
    if size < 4 {
        return None;
    }
    // Skip the network address, the first address (the `kubernetes`
    // service's by convention) and the broadcast address.
    let usable = size - 3;
    let mut rng = rand::rng();
    let free = |off: u32| {
        let ip = Ipv4Addr::from(base + 2 + off);
        (!taken.contains(&ip)).then_some(ip)
    };
    for _ in 0..64 {
        if let Some(ip) = free(rng.random_range(0..usable)) {
            return Some(ip);
        }
    }
    (0..usable).find_map(free)
}

fn pick_port(ranges: &Ranges, taken: &HashSet<i64>) -> Option<i64> {
    let (lo, hi) = (
        i64::from(*ranges.node_ports.start()),
        i64::from(*ranges.node_ports.end()),
    );
    let mut rng = rand::rng();
    for _ in 0..64 {
        let p = rng.random_range(lo..=hi);
        if !taken.contains(&p) {
            return Some(p);
        }
    }
    (lo..=hi).find(|p| !taken.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges() -> Ranges {
        Ranges {
            cidr: "10.96.0.0/29".parse().unwrap(),
            node_ports: 30000..=30002,
        }
    }

    #[test]
    fn allocates_ip_and_node_ports_and_reuses_them_on_update() {
        let mut spec = json!({"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP"}]});
        let claims =
            allocate(&mut spec, None, &ranges(), &HashSet::new(), &HashSet::new()).unwrap();
        assert_eq!(claims.len(), 2);
        let ip: Ipv4Addr = spec["clusterIP"].as_str().unwrap().parse().unwrap();
        assert!(ranges().cidr.contains(ip));
        let old = json!({"spec": spec.clone()});
        let mut again = json!({"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP"}]});
        let claims = allocate(
            &mut again,
            Some(&old),
            &ranges(),
            &HashSet::new(),
            &HashSet::new(),
        )
        .unwrap();
        assert!(claims.is_empty());
        assert_eq!(again["ports"][0]["nodePort"], spec["ports"][0]["nodePort"]);
        assert_eq!(held(&json!({"spec": again})), held(&old));
    }

    #[test]
    fn explicit_values_clash_with_taken_ones() {
        let mut spec = json!({"clusterIP": "10.96.0.3", "type": "NodePort", "ports": [{"port": 80, "nodePort": 30001}]});
        let ips = HashSet::from(["10.96.0.3".parse().unwrap()]);
        let ports = HashSet::from([30001]);
        let errs = allocate(&mut spec, None, &ranges(), &ips, &ports).unwrap_err();
        assert_eq!(errs.len(), 2);
        let mut out_of_range = json!({"clusterIP": "10.1.0.3", "ports": [{"port": 80}]});
        assert!(allocate(
            &mut out_of_range,
            None,
            &ranges(),
            &HashSet::new(),
            &HashSet::new()
        )
        .is_err());
    }

    #[test]
    fn full_range_is_an_error() {
        let ips: HashSet<Ipv4Addr> = (2..=6).map(|i| Ipv4Addr::new(10, 96, 0, i)).collect();
        let mut spec = json!({"ports": [{"port": 80}]});
        assert!(allocate(&mut spec, None, &ranges(), &ips, &HashSet::new()).is_err());
    }
}
