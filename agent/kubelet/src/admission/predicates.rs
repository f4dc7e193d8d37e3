//! The scheduler predicates kubelet re-checks before it runs a pod
//! (`generalFilter`): required node affinity and nodeSelector against the
//! node's labels, the node name, host ports already taken by admitted
//! pods, and NoExecute taints the pod does not tolerate (not for static
//! pods). Reasons and descriptions are the scheduler plugins'. Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, Pod, Taint, Toleration};

/// A failed predicate: kubelet's `PredicateFailureError`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub name: &'static str,
    pub desc: &'static str,
}

impl Failure {
    pub fn message(&self) -> String {
        format!("Predicate {} failed: {}", self.name, self.desc)
    }
}

/// The node as admission sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeView {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    /// False until the Node was read from the API (when there is one):
    /// labels an admin added are unknown before.
    pub synced: bool,
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let int = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => match (value.and_then(int), values.first().and_then(|s| int(s))) {
            (Some(v), Some(bound)) if r.operator == "Gt" => v > bound,
            (Some(v), Some(bound)) => v < bound,
            _ => false,
        },
        _ => false,
    }
}

/// nodeSelector and `requiredDuringSchedulingIgnoredDuringExecution`
/// (terms ORed, a term's requirements ANDed; an empty term matches
/// nothing).
pub fn node_affinity_matches(pod: &Pod, node: &NodeView) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| node.labels.get(k) == Some(v));
    if !selector_ok {
        return false;
    }
    let Some(required) = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
    else {
        return true;
    };
    required.node_selector_terms.iter().any(|t| {
        let exprs = t.match_expressions.as_deref().unwrap_or_default();
        let fields = t.match_fields.as_deref().unwrap_or_default();
        if exprs.is_empty() && fields.is_empty() {
            return false;
        }
        exprs
            .iter()
            .all(|r| requirement_matches(r, node.labels.get(&r.key).map(String::as_str)))
            && fields.iter().all(|r| {
                let v = (r.key == "metadata.name").then_some(node.name.as_str());
                requirement_matches(r, v)
            })
    })
}

/// (hostIP, protocol, hostPort).
pub type HostPort = (String, String, i32);

/// Every container port with a hostPort.
pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p.host_port.filter(|h| *h > 0)?;
            let ip = p
                .host_ip
                .clone()
                .filter(|i| !i.is_empty())
                .unwrap_or_else(|| "0.0.0.0".into());
            let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            Some((ip, proto, port))
        })
        .collect()
}

/// The scheduler's NodePorts check: the same port and protocol conflict
/// when either side listens on every address or both on the same one.
pub fn ports_conflict(wanted: &[HostPort], used: &[HostPort]) -> bool {
    wanted.iter().any(|(ip, proto, port)| {
        used.iter().any(|(uip, uproto, uport)| {
            port == uport && proto == uproto && (ip == uip || ip == "0.0.0.0" || uip == "0.0.0.0")
        })
    })
}

/// Kubernetes' `Toleration.ToleratesTaint`.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if t.effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != taint.effect)
    {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        // An empty key is only valid with Exists.
        "Equal" | "" => {
            !key.is_empty()
                && t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

pub fn tolerations_tolerate(pod: &Pod, taint: &Taint) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_ref())
        .is_some_and(|ts| ts.iter().any(|t| tolerates(t, taint)))
}

/// The predicates in kubelet's order; `used_ports` are the admitted pods'
/// host ports. The first failure is the one reported.
pub fn check(pod: &Pod, node: &NodeView, used_ports: &[HostPort], is_static: bool) -> Vec<Failure> {
    let mut out = Vec::new();
    if !node_affinity_matches(pod, node) {
        out.push(Failure {
            name: "NodeAffinity",
            desc: "node(s) didn't match Pod's node affinity/selector",
        });
    }
    let node_name = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
    if node_name.is_some_and(|n| !n.is_empty() && n != node.name) {
        out.push(Failure {
            name: "NodeName",
            desc: "node(s) didn't match the requested node name",
        });
    }
    if ports_conflict(&host_ports(pod), used_ports) {
        out.push(Failure {
            name: "NodePorts",
            desc: "node(s) didn't have free ports for the requested pod ports",
        });
    }
    // kubelet only cares about NoExecute taints, and never for static pods.
    let untolerated = node
        .taints
        .iter()
        .filter(|t| t.effect == "NoExecute")
        .any(|t| !tolerations_tolerate(pod, t));
    if !is_static && untolerated {
        out.push(Failure {
            name: "TaintToleration",
            desc: "node(s) had taints that the pod didn't tolerate",
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    fn node() -> NodeView {
        NodeView {
            name: "node-1".into(),
            labels: BTreeMap::from([
                ("kubernetes.io/hostname".into(), "node-1".into()),
                ("disk".into(), "ssd".into()),
                ("cores".into(), "8".into()),
            ]),
            taints: Vec::new(),
            synced: true,
        }
    }

    #[test]
    fn node_selector_and_required_affinity() {
        let n = node();
        assert!(node_affinity_matches(&pod(json!({"containers": []})), &n));
        assert!(node_affinity_matches(
            &pod(json!({"containers": [], "nodeSelector": {"disk": "ssd"}})),
            &n
        ));
        let miss = pod(json!({"containers": [], "nodeSelector": {"disk": "hdd"}}));
        assert!(!node_affinity_matches(&miss, &n));
        assert_eq!(
            check(&miss, &n, &[], false)[0].message(),
            "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"
        );
        let affinity = |terms: serde_json::Value| {
            pod(json!({"containers": [], "affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}))
        };
        let expr = |key: &str, op: &str, values: serde_json::Value| json!([{"matchExpressions": [{"key": key, "operator": op, "values": values}]}]);
        assert!(node_affinity_matches(
            &affinity(expr("disk", "In", json!(["ssd", "nvme"]))),
            &n
        ));
        assert!(!node_affinity_matches(
            &affinity(expr("disk", "NotIn", json!(["ssd"]))),
            &n
        ));
        assert!(node_affinity_matches(
            &affinity(expr("gpu", "DoesNotExist", json!([]))),
            &n
        ));
        assert!(node_affinity_matches(
            &affinity(expr("cores", "Gt", json!(["4"]))),
            &n
        ));
        assert!(!node_affinity_matches(
            &affinity(expr("cores", "Lt", json!(["4"]))),
            &n
        ));
        // Terms are ORed.
        let either = json!([
            {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]},
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-1"]}]},
        ]);
        assert!(node_affinity_matches(&affinity(either), &n));
        assert!(!node_affinity_matches(&affinity(json!([{}])), &n));
    }

    #[test]
    fn host_port_conflicts() {
        let p = |ip: Option<&str>, port: i32, proto: &str| {
            let mut cp = json!({"containerPort": 80, "hostPort": port, "protocol": proto});
            if let Some(ip) = ip {
                cp["hostIP"] = json!(ip);
            }
            pod(json!({"containers": [{"name": "c", "ports": [cp]}]}))
        };
        let used = host_ports(&p(None, 8080, "TCP"));
        assert_eq!(used, vec![("0.0.0.0".into(), "TCP".into(), 8080)]);
        assert!(ports_conflict(
            &host_ports(&p(Some("10.0.0.1"), 8080, "TCP")),
            &used
        ));
        assert!(!ports_conflict(&host_ports(&p(None, 8080, "UDP")), &used));
        assert!(!ports_conflict(&host_ports(&p(None, 8081, "TCP")), &used));
        let one = host_ports(&p(Some("10.0.0.1"), 9000, "TCP"));
        assert!(!ports_conflict(
            &host_ports(&p(Some("10.0.0.2"), 9000, "TCP")),
            &one
        ));
        let r = check(&p(None, 8080, "TCP"), &node(), &used, false);
        assert_eq!(r[0].name, "NodePorts");
    }

    #[test]
    fn no_execute_taints_need_tolerations_except_for_static_pods() {
        let mut n = node();
        n.taints.push(Taint {
            key: "dedicated".into(),
            value: Some("db".into()),
            effect: "NoExecute".into(),
            time_added: None,
        });
        n.taints.push(Taint {
            key: "node.kubernetes.io/memory-pressure".into(),
            value: None,
            effect: "NoSchedule".into(),
            time_added: None,
        });
        let plain = pod(json!({"containers": []}));
        assert_eq!(check(&plain, &n, &[], false)[0].name, "TaintToleration");
        assert!(check(&plain, &n, &[], true).is_empty());
        let tolerant = pod(json!({"containers": [], "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoExecute"}]}));
        assert!(check(&tolerant, &n, &[], false).is_empty());
        let everything = pod(json!({"containers": [], "tolerations": [{"operator": "Exists"}]}));
        assert!(check(&everything, &n, &[], false).is_empty());
        let wrong_value = pod(json!({"containers": [], "tolerations": [
            {"key": "dedicated", "value": "web"}]}));
        assert!(!check(&wrong_value, &n, &[], false).is_empty());
    }
}
