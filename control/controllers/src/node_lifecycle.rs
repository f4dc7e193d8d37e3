//! Node lifecycle: a node whose heartbeat (its Lease in kube-node-lease,
//! else its Ready condition's heartbeat) is older than the grace period
//! becomes Ready=Unknown and gets the `node.kubernetes.io/unreachable`
//! NoExecute taint; pods on it are evicted once their toleration time
//! runs out (300 s unless the pod says otherwise, as the DefaultToleration
//! admission plugin gives every pod). A node that heartbeats again loses
//! the taint. Pure decisions; the loop writes them.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams};

use capstan_k8s::scheduling::taints::tolerates;

pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// Kubernetes' default `--node-monitor-grace-period`.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(40);
/// What DefaultTolerationSeconds gives pods that don't say.
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// The node's last sign of life.
pub fn heartbeat(node: &Node, lease: Option<&Lease>) -> Option<Timestamp> {
    let from_lease = lease
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0);
    let from_status = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0);
    match (from_lease, from_status) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
    .or_else(|| node.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

fn ready_status(node: &Node) -> Option<&str> {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str())
}

fn taint(node: &Node, key: &str) -> Option<Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .find(|t| t.key == key && t.effect == "NoExecute")
        .cloned()
}

#[derive(Debug, Default, PartialEq)]
pub struct NodePlan {
    /// Set every condition to Unknown (the node went silent).
    pub mark_unknown: bool,
    /// The NoExecute taints the node should carry, replacing ours.
    pub set_taints: Option<Vec<Taint>>,
}

pub fn plan_node(node: &Node, lease: Option<&Lease>, now: Timestamp, grace: Duration) -> NodePlan {
    let silent = heartbeat(node, lease)
        .is_none_or(|hb| now.duration_since(hb).as_secs() > grace.as_secs() as i64);
    let ready = ready_status(node);
    let mut out = NodePlan {
        mark_unknown: silent && ready != Some("Unknown"),
        ..Default::default()
    };
    let effective = if silent { Some("Unknown") } else { ready };
    let want_unreachable = effective == Some("Unknown");
    let want_not_ready = effective == Some("False");
    let has_unreachable = taint(node, UNREACHABLE).is_some();
    let has_not_ready = taint(node, NOT_READY).is_some();
    if want_unreachable != has_unreachable || want_not_ready != has_not_ready {
        let mut taints: Vec<Taint> = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|t| !(t.effect == "NoExecute" && (t.key == UNREACHABLE || t.key == NOT_READY)))
            .collect();
        let mk = |key: &str| {
            // Keep the original time a taint was added: eviction counts from it.
            taint(node, key).unwrap_or(Taint {
                key: key.into(),
                effect: "NoExecute".into(),
                time_added: Some(Time(now)),
                value: None,
            })
        };
        if want_unreachable {
            taints.push(mk(UNREACHABLE));
        }
        if want_not_ready {
            taints.push(mk(NOT_READY));
        }
        out.set_taints = Some(taints);
    }
    out
}

/// When (if ever) `pod` must leave a node carrying `taints`.
pub fn eviction_due(pod: &Pod, taints: &[Taint], now: Timestamp) -> bool {
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    taints.iter().filter(|t| t.effect == "NoExecute").any(|t| {
        let matching: Vec<_> = tolerations.iter().filter(|tol| tolerates(tol, t)).collect();
        let seconds = if matching.is_empty() {
            // Only the readiness taints get the admission default.
            if t.key == UNREACHABLE || t.key == NOT_READY {
                Some(DEFAULT_TOLERATION_SECONDS)
            } else {
                Some(0)
            }
        } else if matching.iter().any(|m| m.toleration_seconds.is_none()) {
            None
        } else {
            matching.iter().filter_map(|m| m.toleration_seconds).min()
        };
        match (seconds, t.time_added.as_ref()) {
            (None, _) => false,
            (Some(s), Some(added)) => now.duration_since(added.0).as_secs() >= s,
            (Some(s), None) => s <= 0,
        }
    })
}

pub async fn apply_node(client: &kube::Client, node: &Node, p: &NodePlan, now: Timestamp) -> usize {
    let name = node.metadata.name.clone().unwrap_or_default();
    let api: Api<Node> = Api::all(client.clone());
    let mut failed = 0;
    if p.mark_unknown {
        let conds: Vec<serde_json::Value> = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|mut c| {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = Some(Time(now));
                serde_json::to_value(c).unwrap_or_default()
            })
            .collect();
        let patch = serde_json::json!({"status": {"conditions": conds}});
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => tracing::warn!(node = %name, "node stopped posting status; Ready=Unknown"),
            Err(e) => {
                tracing::info!(node = %name, error = %e, "marking node unknown failed");
                failed += 1;
            }
        }
    }
    if let Some(taints) = &p.set_taints {
        let patch = serde_json::json!({"spec": {"taints": taints}});
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                tracing::info!(node = %name, taints = ?taints.iter().map(|t| &t.key).collect::<Vec<_>>(), "node taints updated")
            }
            Err(e) => {
                tracing::info!(node = %name, error = %e, "updating node taints failed");
                failed += 1;
            }
        }
    }
    failed
}

/// Evicts (deletes) the pods on tainted nodes whose toleration ran out.
pub async fn evict(
    client: &kube::Client,
    nodes: &[Arc<Node>],
    pods: &[Arc<Pod>],
    now: Timestamp,
) -> usize {
    let mut failed = 0;
    for node in nodes {
        let taints: Vec<Taint> = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t.effect == "NoExecute")
            .collect();
        if taints.is_empty() {
            continue;
        }
        let name = node.metadata.name.as_deref().unwrap_or("");
        for pod in pods.iter().filter(|p| {
            super::pods::node_name(p) == Some(name) && p.metadata.deletion_timestamp.is_none()
        }) {
            if !eviction_due(pod, &taints, now) {
                continue;
            }
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let pname = pod.metadata.name.clone().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            match api.delete(&pname, &DeleteParams::default()).await {
                Ok(_) => {
                    tracing::info!(node = %name, pod = %pname, namespace = %ns, "evicted pod from tainted node")
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    tracing::info!(pod = %pname, error = %e, "evicting pod failed");
                    failed += 1;
                }
            }
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus, PodSpec, Toleration};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node(hb_secs_ago: i64, now: Timestamp, ready: &str) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("n".into()),
                ..Default::default()
            },
            spec: Some(NodeSpec::default()),
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: ready.into(),
                    last_heartbeat_time: Some(Time(
                        now - k8s_openapi::jiff::SignedDuration::from_secs(hb_secs_ago),
                    )),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_silent_node_goes_unknown_and_unreachable() {
        let now = Timestamp::now();
        let p = plan_node(&node(60, now, "True"), None, now, DEFAULT_GRACE);
        assert!(p.mark_unknown);
        let t = p.set_taints.unwrap();
        assert_eq!(t[0].key, UNREACHABLE);
        assert!(plan_node(&node(5, now, "True"), None, now, DEFAULT_GRACE) == NodePlan::default());
    }

    #[test]
    fn a_node_heard_again_loses_the_taint() {
        let now = Timestamp::now();
        let mut n = node(1, now, "True");
        n.spec = Some(NodeSpec {
            taints: Some(vec![Taint {
                key: UNREACHABLE.into(),
                effect: "NoExecute".into(),
                time_added: Some(Time(now)),
                value: None,
            }]),
            ..Default::default()
        });
        let p = plan_node(&n, None, now, DEFAULT_GRACE);
        assert_eq!(p.set_taints, Some(vec![]));
        assert!(!p.mark_unknown);
    }

    #[test]
    fn eviction_waits_for_the_toleration() {
        let now = Timestamp::now();
        let added = |ago: i64| Taint {
            key: UNREACHABLE.into(),
            effect: "NoExecute".into(),
            time_added: Some(Time(
                now - k8s_openapi::jiff::SignedDuration::from_secs(ago),
            )),
            value: None,
        };
        let plain = Pod::default();
        assert!(!eviction_due(&plain, &[added(100)], now));
        assert!(eviction_due(&plain, &[added(301)], now));
        let short = Pod {
            spec: Some(PodSpec {
                tolerations: Some(vec![Toleration {
                    key: Some(UNREACHABLE.into()),
                    operator: Some("Exists".into()),
                    effect: Some("NoExecute".into()),
                    toleration_seconds: Some(5),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(eviction_due(&short, &[added(6)], now));
        assert!(!eviction_due(&short, &[added(2)], now));
    }
}
