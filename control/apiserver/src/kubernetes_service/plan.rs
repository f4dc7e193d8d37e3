//! What the `default/kubernetes` objects must hold, and the stored object
//! with those fields put back when it differs. Pure over JSON.

use std::net::Ipv4Addr;

use serde_json::{json, Value};

pub const NAME: &str = "kubernetes";
pub const NAMESPACE: &str = "default";
const PORT_NAME: &str = "https";
/// The Service's port; the target is the server's secure port.
const SERVICE_PORT: u16 = 443;

/// Where the Service leads: the advertised address and the secure port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub cluster_ip: Ipv4Addr,
    pub address: Ipv4Addr,
    pub port: u16,
}

pub fn desired_service(t: &Target) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": t.cluster_ip.to_string(),
            "sessionAffinity": "None",
            "ports": [{"name": PORT_NAME, "port": SERVICE_PORT, "protocol": "TCP", "targetPort": t.port}],
        },
    })
}

pub fn desired_endpoints(t: &Target) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            // The EndpointSlice is written here too; nothing mirrors it.
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
        },
        "subsets": [{
            "addresses": [{"ip": t.address.to_string()}],
            "ports": [{"name": PORT_NAME, "port": t.port, "protocol": "TCP"}],
        }],
    })
}

pub fn desired_slice(t: &Target) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {"kubernetes.io/service-name": NAME},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [t.address.to_string()], "conditions": {"ready": true}}],
        "ports": [{"name": PORT_NAME, "port": t.port, "protocol": "TCP"}],
    })
}

/// The fields of `want` that must match, by kind.
fn owned(kind: &str) -> &'static [&'static str] {
    match kind {
        "Service" => &["/spec/type", "/spec/ports", "/spec/selector"],
        "Endpoints" => &["/subsets"],
        _ => &["/addressType", "/endpoints", "/ports"],
    }
}

/// The Service's ports compared on what we set (the server adds defaults
/// such as a port's `nodePort` absence or `appProtocol`).
fn ports_view(v: Option<&Value>) -> Vec<(Value, Value, Value, Value)> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let f = |k: &str| p.get(k).cloned().unwrap_or(Value::Null);
            (f("name"), f("port"), f("protocol"), f("targetPort"))
        })
        .collect()
}

fn matches(kind: &str, ptr: &str, stored: Option<&Value>, want: Option<&Value>) -> bool {
    if kind == "Service" && ptr == "/spec/ports" {
        return ports_view(stored) == ports_view(want);
    }
    stored.filter(|v| !v.is_null()) == want
}

/// `stored` with `want`'s owned fields and labels put back, or `None`
/// when it already has them. Everything else of the stored object (its
/// cluster IP, annotations, other labels) stays.
pub fn fix(stored: &Value, want: &Value) -> Option<Value> {
    let kind = want.get("kind").and_then(Value::as_str).unwrap_or_default();
    let mut out = stored.clone();
    let mut changed = false;
    for ptr in owned(kind) {
        let w = want.pointer(ptr);
        if matches(kind, ptr, stored.pointer(ptr), w) {
            continue;
        }
        changed = true;
        let (parent, key) = ptr.rsplit_once('/').unwrap_or(("", ptr));
        let target = if parent.is_empty() {
            Some(&mut out)
        } else {
            if !out.pointer(parent).is_some_and(Value::is_object) {
                out[parent.trim_start_matches('/')] = json!({});
            }
            out.pointer_mut(parent)
        };
        if let Some(Value::Object(m)) = target {
            match w {
                Some(v) => {
                    m.insert(key.to_string(), v.clone());
                }
                None => {
                    m.remove(key);
                }
            }
        }
    }
    let want_labels = want.pointer("/metadata/labels").and_then(Value::as_object);
    for (k, v) in want_labels.into_iter().flatten() {
        if out.pointer(&format!("/metadata/labels/{}", k.replace('/', "~1"))) != Some(v) {
            changed = true;
            if !out
                .pointer("/metadata/labels")
                .is_some_and(Value::is_object)
            {
                out["metadata"]["labels"] = json!({});
            }
            out["metadata"]["labels"][k] = v.clone();
        }
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(addr: [u8; 4]) -> Target {
        Target {
            cluster_ip: Ipv4Addr::new(10, 96, 0, 1),
            address: Ipv4Addr::from(addr),
            port: 6443,
        }
    }

    #[test]
    fn the_service_leads_to_the_secure_port() {
        let s = desired_service(&target([192, 168, 1, 5]));
        assert_eq!(s["spec"]["clusterIP"], "10.96.0.1");
        assert_eq!(
            s["spec"]["ports"],
            json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}])
        );
        assert!(s["spec"].get("selector").is_none());
        let sl = desired_slice(&target([192, 168, 1, 5]));
        assert_eq!(sl["endpoints"][0]["addresses"], json!(["192.168.1.5"]));
        assert_eq!(sl["metadata"]["labels"]["kubernetes.io/service-name"], NAME);
    }

    #[test]
    fn a_stored_service_with_defaults_needs_nothing() {
        let want = desired_service(&target([192, 168, 1, 5]));
        let mut stored = want.clone();
        stored["metadata"]["uid"] = json!("u");
        stored["metadata"]["labels"]["extra"] = json!("kept");
        stored["spec"]["ipFamilies"] = json!(["IPv4"]);
        stored["spec"]["ports"][0]["appProtocol"] = json!("x");
        assert_eq!(fix(&stored, &want), None);
    }

    #[test]
    fn edits_are_undone_and_the_rest_kept() {
        let want = desired_service(&target([192, 168, 1, 5]));
        let mut stored = want.clone();
        stored["spec"]["ports"][0]["targetPort"] = json!(8443);
        stored["spec"]["selector"] = json!({"app": "x"});
        stored["metadata"]["labels"] = json!({"extra": "kept"});
        stored["metadata"]["annotations"] = json!({"a": "b"});
        let fixed = fix(&stored, &want).expect("a change");
        assert_eq!(fixed["spec"]["ports"], want["spec"]["ports"]);
        assert!(fixed["spec"].get("selector").is_none());
        assert_eq!(fixed["metadata"]["labels"]["component"], "apiserver");
        assert_eq!(fixed["metadata"]["labels"]["extra"], "kept");
        assert_eq!(fixed["metadata"]["annotations"]["a"], "b");
        assert_eq!(fix(&fixed, &want), None);
    }

    #[test]
    fn a_new_address_replaces_the_old_one() {
        let old = desired_endpoints(&target([192, 168, 1, 5]));
        let want = desired_endpoints(&target([192, 168, 1, 6]));
        let fixed = fix(&old, &want).expect("a change");
        assert_eq!(
            fixed["subsets"][0]["addresses"],
            json!([{"ip": "192.168.1.6"}])
        );
        let old = desired_slice(&target([192, 168, 1, 5]));
        let want = desired_slice(&target([192, 168, 1, 6]));
        let fixed = fix(&old, &want).expect("a change");
        assert_eq!(fixed["endpoints"], want["endpoints"]);
        assert_eq!(fix(&want, &want), None);
    }
}
