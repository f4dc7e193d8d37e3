//! The scheduler predicates kubelet re-checks before it runs a pod
//! (`generalFilter`): required node affinity and nodeSelector against the
//! node's labels, the node name, host ports already taken by admitted
//! pods, and NoExecute taints the pod does not tolerate (not for static
//! pods). Reasons and descriptions are the scheduler plugins'; the checks
//! themselves are `capstan_k8s::scheduling`'s, shared with the scheduler.
//! Pure.

use std::collections::BTreeMap;

use capstan_k8s::scheduling::node_affinity::{self, NodeFields};
use capstan_k8s::scheduling::{host_ports, taints};
use k8s_openapi::api::core::v1::{Pod, Taint, Toleration};

pub use capstan_k8s::scheduling::HostPort;

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

/// nodeSelector and `requiredDuringSchedulingIgnoredDuringExecution`, by
/// the one implementation the scheduler uses too.
pub fn node_affinity_matches(pod: &Pod, node: &NodeView) -> bool {
    node_affinity::required_node_affinity_matches(
        pod,
        NodeFields {
            name: &node.name,
            labels: &node.labels,
        },
    )
}

/// Every container port with a hostPort (the scheduler's NodePorts view:
/// app containers).
pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    host_ports::of_pod(pod)
}

/// The scheduler's NodePorts check: the same port and protocol conflict
/// when either side listens on every address or both on the same one.
pub fn ports_conflict(wanted: &[HostPort], used: &[HostPort]) -> bool {
    host_ports::any_conflict(wanted, used)
}

/// Kubernetes' `Toleration.ToleratesTaint`.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    taints::tolerates(t, taint)
}

pub fn tolerations_tolerate(pod: &Pod, taint: &Taint) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .is_some_and(|ts| taints::tolerated(ts, taint))
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
        assert_eq!(
            used,
            vec![HostPort {
                ip: "0.0.0.0".into(),
                protocol: "TCP".into(),
                port: 8080
            }]
        );
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
