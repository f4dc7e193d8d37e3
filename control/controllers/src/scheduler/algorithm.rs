//! One scheduling decision: filter every node, score the feasible ones
//! (least-allocated balance plus spreading a controller's replicas), pick the
//! best with a random tie-break, or explain why nothing fits in
//! kube-scheduler's words. Pure: the caller owns the snapshot.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

use super::filter::{filter_with, PodFacts};
use super::node_info::{controller_uid, NodeInfo, Resources};

/// Why a pod fits nowhere: the event and condition message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FitError {
    pub message: String,
}

/// "0/3 nodes are available: 1 node(s) had untolerated taint {k: v}, 2
/// Insufficient cpu." — counts per reason, sorted as kube-scheduler sorts.
pub fn fit_message(total: usize, reasons: &HashMap<String, usize>) -> String {
    let mut parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    if parts.is_empty() {
        return format!("0/{total} nodes are available.");
    }
    format!("0/{total} nodes are available: {}.", parts.join(", "))
}

/// Least-allocated (how much room is left after placing the pod: cpu,
/// memory and pod slots averaged) plus a spreading term for pods of the
/// same controller. On a 0–10,000 scale rather than kube-scheduler's 0–100,
/// so that nodes differing by one small pod don't tie and spreading stays
/// even when requests are tiny.
fn score(pod: &Pod, req: Resources, info: &NodeInfo) -> i64 {
    let room = |alloc: i128, used: i128| -> i64 {
        if alloc <= 0 {
            return 0;
        }
        (((alloc - used).max(0) * 10_000) / alloc) as i64
    };
    let least = (room(
        info.allocatable.milli_cpu,
        info.requested.milli_cpu + req.milli_cpu,
    ) + room(info.allocatable.memory, info.requested.memory + req.memory)
        + room(info.allowed_pods, info.pod_count + 1))
        / 3;
    let siblings = controller_uid(pod)
        .and_then(|u| info.by_owner.get(u))
        .copied()
        .unwrap_or(0) as i64;
    // Spreading dominates: a node with fewer replicas of this controller wins.
    least + (10_000 - (siblings * 1_000).min(10_000)) * 2
}

/// Picks a node for `pod`. `pick` breaks ties among equally scored nodes
/// (the caller passes a random number; tests a fixed one).
pub fn schedule(
    pod: &Pod,
    nodes: &BTreeMap<String, Arc<Node>>,
    infos: &BTreeMap<String, NodeInfo>,
    pick: usize,
) -> Result<String, FitError> {
    let facts = PodFacts::of(pod);
    let mut reasons: HashMap<String, usize> = HashMap::new();
    let mut best: Vec<&str> = Vec::new();
    let mut best_score = i64::MIN;
    for (name, node) in nodes {
        let Some(info) = infos.get(name) else {
            continue;
        };
        let why = filter_with(pod, &facts, node, info);
        if !why.is_empty() {
            for r in why {
                *reasons.entry(r).or_default() += 1;
            }
            continue;
        }
        let s = score(pod, facts.requests, info);
        if s > best_score {
            best_score = s;
            best.clear();
        }
        if s == best_score {
            best.push(name);
        }
    }
    if best.is_empty() {
        return Err(FitError {
            message: fit_message(nodes.len(), &reasons),
        });
    }
    Ok(best[pick % best.len()].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::node_info::tests::{container, pod};
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus, Taint};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    fn node(name: &str, cpu: &str) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(NodeSpec::default()),
            status: Some(NodeStatus {
                allocatable: Some(BTreeMap::from([
                    ("cpu".to_string(), Quantity(cpu.into())),
                    ("memory".to_string(), Quantity("4Gi".into())),
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

    fn world(nodes: Vec<Node>) -> (BTreeMap<String, Arc<Node>>, BTreeMap<String, NodeInfo>) {
        let infos = nodes
            .iter()
            .map(|n| {
                (
                    n.metadata.name.clone().unwrap_or_default(),
                    NodeInfo::from_node(n),
                )
            })
            .collect();
        let nodes = nodes
            .into_iter()
            .map(|n| (n.metadata.name.clone().unwrap_or_default(), Arc::new(n)))
            .collect();
        (nodes, infos)
    }

    #[test]
    fn the_emptier_node_wins() {
        let (nodes, mut infos) = world(vec![node("a", "2"), node("b", "2")]);
        if let Some(a) = infos.get_mut("a") {
            a.add_pod(&pod(vec![container("1", "")], vec![]));
        }
        let p = pod(vec![container("100m", "")], vec![]);
        assert_eq!(schedule(&p, &nodes, &infos, 0), Ok("b".to_string()));
    }

    #[test]
    fn replicas_of_one_controller_spread() {
        let (nodes, mut infos) = world(vec![node("a", "2"), node("b", "2")]);
        let mut p = pod(vec![container("", "")], vec![]);
        p.metadata.owner_references = Some(vec![OwnerReference {
            uid: "rs-1".into(),
            controller: Some(true),
            ..Default::default()
        }]);
        for _ in 0..2 {
            if let Some(b) = infos.get_mut("b") {
                b.add_pod(&p);
            }
        }
        assert_eq!(schedule(&p, &nodes, &infos, 1), Ok("a".to_string()));
    }

    #[test]
    fn nothing_fits_explains_per_reason() {
        let mut tainted = node("c", "8");
        tainted.spec = Some(NodeSpec {
            taints: Some(vec![Taint {
                key: "node.kubernetes.io/unreachable".into(),
                effect: "NoExecute".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        let (nodes, infos) = world(vec![node("a", "1"), node("b", "1"), tainted]);
        let p = pod(vec![container("4", "")], vec![]);
        let err = schedule(&p, &nodes, &infos, 0).unwrap_err();
        assert_eq!(
            err.message,
            "0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, 2 Insufficient cpu."
        );
    }
}
