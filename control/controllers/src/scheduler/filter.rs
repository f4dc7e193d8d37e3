//! Can this pod run on this node? The filters of kube-scheduler's default
//! profile that a worker stack relies on, in its order; each failing node
//! gets the reason text kube-scheduler prints, so users see familiar
//! messages. Pure functions over the API objects and a `NodeInfo`.

use capstan_k8s::scheduling::host_ports::any_conflict;
use capstan_k8s::scheduling::node_affinity::required_node_affinity_matches;
use capstan_k8s::scheduling::taints::{find_untolerated, tolerated};
use capstan_k8s::scheduling::NodeFields;
use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};

use super::node_info::{pod_host_ports, pod_requests, HostPort, NodeInfo, Resources};

pub const REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
pub const REASON_NOT_READY: &str = "node(s) were not ready";
pub const REASON_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
pub const REASON_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
pub const REASON_NODE_NAME: &str = "node(s) didn't match the requested node name";

/// What the filters and scores need of a pod, computed once per decision
/// rather than once per node (quantity parsing dominated a 500-node pass).
#[derive(Clone, Debug)]
pub struct PodFacts {
    pub requests: Resources,
    pub host_ports: Vec<HostPort>,
}

impl PodFacts {
    pub fn of(pod: &Pod) -> Self {
        PodFacts {
            requests: pod_requests(pod),
            host_ports: pod_host_ports(pod),
        }
    }
}

/// Why a node can't take the pod (empty: it can). Kubernetes stops at the
/// first failing filter but reports every insufficient resource.
pub fn filter(pod: &Pod, node: &Node, info: &NodeInfo) -> Vec<String> {
    filter_with(pod, &PodFacts::of(pod), node, info)
}

/// `filter` with the pod's facts already worked out.
pub fn filter_with(pod: &Pod, facts: &PodFacts, node: &Node, info: &NodeInfo) -> Vec<String> {
    let spec = pod.spec.as_ref();
    let tolerations: &[Toleration] = spec
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default();
    let node_spec = node.spec.as_ref();

    if node_spec.and_then(|s| s.unschedulable) == Some(true)
        && !tolerated(
            tolerations,
            &Taint {
                key: "node.kubernetes.io/unschedulable".into(),
                effect: "NoSchedule".into(),
                ..Default::default()
            },
        )
    {
        return vec![REASON_UNSCHEDULABLE.into()];
    }
    if !is_ready(node) {
        return vec![REASON_NOT_READY.into()];
    }
    let taints: &[Taint] = node_spec
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default();
    if let Some(t) = find_untolerated(taints, tolerations, |t| {
        t.effect == "NoSchedule" || t.effect == "NoExecute"
    }) {
        return vec![format!(
            "node(s) had untolerated taint {{{}: {}}}",
            t.key,
            t.value.as_deref().unwrap_or("")
        )];
    }
    if let Some(wanted) = spec.and_then(|s| s.node_name.as_deref()) {
        if !wanted.is_empty() && Some(wanted) != node.metadata.name.as_deref() {
            return vec![REASON_NODE_NAME.into()];
        }
    }
    let no_labels = Default::default();
    if !required_node_affinity_matches(pod, NodeFields::of(node, &no_labels)) {
        return vec![REASON_AFFINITY.into()];
    }
    if any_conflict(&facts.host_ports, &info.host_ports) {
        return vec![REASON_PORTS.into()];
    }
    let mut reasons = Vec::new();
    if info.pod_count + 1 > info.allowed_pods {
        reasons.push("Too many pods".to_string());
    }
    let req = facts.requests;
    if req.milli_cpu > 0 && info.requested.milli_cpu + req.milli_cpu > info.allocatable.milli_cpu {
        reasons.push("Insufficient cpu".to_string());
    }
    if req.memory > 0 && info.requested.memory + req.memory > info.allocatable.memory {
        reasons.push("Insufficient memory".to_string());
    }
    reasons
}

pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::node_info::tests::{container, pod};
    use k8s_openapi::api::core::v1::{
        Affinity, NodeAffinity, NodeCondition, NodeSelector, NodeSelectorRequirement,
        NodeSelectorTerm, NodeSpec, NodeStatus,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use std::collections::BTreeMap;

    pub fn node(name: &str, cpu: &str, mem: &str) -> Node {
        Node {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.into()),
                labels: Some(BTreeMap::from([("zone".to_string(), "a".to_string())])),
                ..Default::default()
            },
            spec: Some(NodeSpec::default()),
            status: Some(NodeStatus {
                allocatable: Some(BTreeMap::from([
                    ("cpu".to_string(), Quantity(cpu.into())),
                    ("memory".to_string(), Quantity(mem.into())),
                    ("pods".to_string(), Quantity("110".into())),
                ])),
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn fits(p: &Pod, n: &Node) -> Vec<String> {
        filter(p, n, &NodeInfo::from_node(n))
    }

    #[test]
    fn resources_report_every_shortage() {
        let n = node("n", "1", "1Gi");
        assert!(fits(&pod(vec![container("500m", "512Mi")], vec![]), &n).is_empty());
        assert_eq!(
            fits(&pod(vec![container("2", "2Gi")], vec![]), &n),
            vec!["Insufficient cpu", "Insufficient memory"]
        );
    }

    #[test]
    fn taints_need_tolerations() {
        let mut n = node("n", "1", "1Gi");
        n.spec = Some(NodeSpec {
            taints: Some(vec![Taint {
                key: "dedicated".into(),
                value: Some("gpu".into()),
                effect: "NoSchedule".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        let mut p = pod(vec![container("", "")], vec![]);
        assert_eq!(
            fits(&p, &n),
            vec!["node(s) had untolerated taint {dedicated: gpu}"]
        );
        if let Some(s) = p.spec.as_mut() {
            s.tolerations = Some(vec![Toleration {
                key: Some("dedicated".into()),
                operator: Some("Exists".into()),
                ..Default::default()
            }]);
        }
        assert!(fits(&p, &n).is_empty());
    }

    #[test]
    fn unschedulable_and_not_ready_nodes_are_skipped() {
        let mut n = node("n", "1", "1Gi");
        n.spec = Some(NodeSpec {
            unschedulable: Some(true),
            ..Default::default()
        });
        let p = pod(vec![container("", "")], vec![]);
        assert_eq!(fits(&p, &n), vec![REASON_UNSCHEDULABLE]);
        let mut n = node("n", "1", "1Gi");
        if let Some(s) = n.status.as_mut() {
            s.conditions = None;
        }
        assert_eq!(fits(&p, &n), vec![REASON_NOT_READY]);
    }

    #[test]
    fn selector_and_required_affinity() {
        let n = node("n1", "1", "1Gi");
        let mut p = pod(vec![container("", "")], vec![]);
        if let Some(s) = p.spec.as_mut() {
            s.node_selector = Some(BTreeMap::from([("zone".to_string(), "b".to_string())]));
        }
        assert_eq!(fits(&p, &n), vec![REASON_AFFINITY]);
        if let Some(s) = p.spec.as_mut() {
            s.node_selector = None;
            s.affinity = Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                        node_selector_terms: vec![NodeSelectorTerm {
                            match_fields: Some(vec![NodeSelectorRequirement {
                                key: "metadata.name".into(),
                                operator: "In".into(),
                                values: Some(vec!["n1".into()]),
                            }]),
                            ..Default::default()
                        }],
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        assert!(fits(&p, &n).is_empty());
        assert_eq!(fits(&p, &node("n2", "1", "1Gi")), vec![REASON_AFFINITY]);
    }

    #[test]
    fn host_ports_conflict_across_wildcards() {
        let n = node("n", "1", "1Gi");
        let mut info = NodeInfo::from_node(&n);
        info.host_ports.insert(HostPort::new(None, Some("TCP"), 80));
        let mut c = container("", "");
        c.ports = Some(vec![k8s_openapi::api::core::v1::ContainerPort {
            container_port: 80,
            host_port: Some(80),
            host_ip: Some("10.0.0.1".into()),
            ..Default::default()
        }]);
        assert_eq!(filter(&pod(vec![c], vec![]), &n, &info), vec![REASON_PORTS]);
    }
}
