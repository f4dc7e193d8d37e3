//! DaemonSets: exactly one pod per eligible node (nodeSelector, required
//! node affinity, tolerated taints), none elsewhere; pods of an older
//! template generation replaced at most maxUnavailable at a time. Pods are
//! bound to their node directly (spec.nodeName), as DaemonSets did before
//! they went through the scheduler; a node's own readiness taints are
//! tolerated, as Kubernetes adds those tolerations to every daemon pod.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::{Selector, SelectorExt};

use super::pods::{controller_of, generate_name, is_active, is_ready, node_name};
use super::replicas::owner_ref;
use crate::scheduler::filter;
use crate::scheduler::node_info::NodeInfo;

pub const GENERATION_LABEL: &str = "pod-template-generation";

/// The tolerations Kubernetes adds to every DaemonSet pod.
fn daemon_tolerations() -> Vec<Toleration> {
    let t = |key: &str, effect: &str| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    };
    vec![
        t("node.kubernetes.io/not-ready", "NoExecute"),
        t("node.kubernetes.io/unreachable", "NoExecute"),
        t("node.kubernetes.io/disk-pressure", "NoSchedule"),
        t("node.kubernetes.io/memory-pressure", "NoSchedule"),
        t("node.kubernetes.io/pid-pressure", "NoSchedule"),
        t("node.kubernetes.io/unschedulable", "NoSchedule"),
    ]
}

fn generation(ds: &DaemonSet) -> String {
    ds.metadata.generation.unwrap_or(1).to_string()
}

/// The pod this DaemonSet runs on `node`.
pub fn daemon_pod(ds: &DaemonSet, node: &str) -> Option<Pod> {
    let spec = ds.spec.as_ref()?;
    let name = ds.metadata.name.clone()?;
    let tm = spec.template.metadata.clone().unwrap_or_default();
    let mut labels = tm.labels.unwrap_or_default();
    labels.insert(GENERATION_LABEL.into(), generation(ds));
    let mut pod_spec = spec.template.spec.clone()?;
    pod_spec.node_name = Some(node.to_string());
    let tolerations = pod_spec.tolerations.get_or_insert_with(Vec::new);
    for t in daemon_tolerations() {
        if !tolerations.contains(&t) {
            tolerations.push(t);
        }
    }
    Some(Pod {
        metadata: ObjectMeta {
            name: Some(generate_name(&format!("{name}-"))),
            generate_name: Some(format!("{name}-")),
            namespace: ds.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: tm.annotations,
            owner_references: owner_ref(ds).map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(pod_spec),
        status: None,
    })
}

/// Whether the daemon pod may run on `node`: the scheduler's filters minus
/// readiness and resources (daemons run even on a busy or not-ready node).
pub fn eligible(ds: &DaemonSet, node: &Node) -> bool {
    let Some(mut pod) = daemon_pod(ds, node.metadata.name.as_deref().unwrap_or("")) else {
        return false;
    };
    if let Some(s) = pod.spec.as_mut() {
        // Requests are not checked for daemons; the name is ours to set.
        for c in s.containers.iter_mut() {
            c.resources = None;
        }
        s.init_containers = None;
        s.node_name = None;
        for c in s.containers.iter_mut() {
            c.ports = None;
        }
    }
    let why = filter::filter(&pod, node, &NodeInfo::from_node(node));
    why.is_empty() || why == [filter::REASON_NOT_READY]
}

#[derive(Debug, Default)]
pub struct DsPlan {
    pub create_on: Vec<String>,
    pub delete: Vec<Arc<Pod>>,
    pub status: serde_json::Value,
}

fn max_unavailable(ds: &DaemonSet, desired: usize) -> usize {
    let ru = ds
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.rolling_update.as_ref())
        .and_then(|r| r.max_unavailable.as_ref());
    match ru {
        Some(IntOrString::Int(n)) => (*n).max(1) as usize,
        Some(IntOrString::String(p)) => {
            let pct: f64 = p.trim_end_matches('%').parse().unwrap_or(0.0);
            ((pct * desired as f64 / 100.0).floor() as usize).max(1)
        }
        None => 1,
    }
}

fn on_delete(ds: &DaemonSet) -> bool {
    ds.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        == Some("OnDelete")
}

pub fn plan(ds: &DaemonSet, nodes: &[Arc<Node>], pods: &[Arc<Pod>]) -> DsPlan {
    let uid = ds.metadata.uid.clone().unwrap_or_default();
    let gen = generation(ds);
    let selector = ds
        .spec
        .as_ref()
        .and_then(|s| Selector::try_from(s.selector.clone()).ok());
    let mut by_node: BTreeMap<String, Vec<Arc<Pod>>> = BTreeMap::new();
    for p in pods {
        if controller_of(p).is_some_and(|c| c.uid == uid) && is_active(p) {
            let labels = p.metadata.labels.clone().unwrap_or_default();
            if selector.as_ref().is_some_and(|s| s.matches(&labels)) {
                by_node
                    .entry(node_name(p).unwrap_or("").to_string())
                    .or_default()
                    .push(p.clone());
            }
        }
    }
    let mut out = DsPlan::default();
    let mut desired = 0usize;
    let mut scheduled = 0;
    let mut ready = 0;
    let mut updated = 0;
    let mut misscheduled = 0;
    let mut outdated: Vec<Arc<Pod>> = Vec::new();
    let mut unavailable = 0usize;
    let node_names: std::collections::HashSet<String> = nodes
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    for node in nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        let here = by_node.remove(&name).unwrap_or_default();
        if eligible(ds, node) {
            desired += 1;
            if here.is_empty() {
                out.create_on.push(name);
                unavailable += 1;
                continue;
            }
            scheduled += 1;
            // Keep the newest-generation, ready one; extras go.
            let mut here = here;
            here.sort_by_key(|p| {
                let current = p
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(GENERATION_LABEL))
                    == Some(&gen);
                (std::cmp::Reverse(current), std::cmp::Reverse(is_ready(p)))
            });
            let keep = here.remove(0);
            out.delete.extend(here);
            if is_ready(&keep) {
                ready += 1;
            } else {
                unavailable += 1;
            }
            if keep
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(GENERATION_LABEL))
                == Some(&gen)
            {
                updated += 1;
            } else {
                outdated.push(keep);
            }
        } else if !here.is_empty() {
            misscheduled += 1;
            out.delete.extend(here);
        }
    }
    // Pods on nodes that no longer exist.
    for (node, here) in by_node {
        if !node_names.contains(&node) {
            out.delete.extend(here);
        }
    }
    if !on_delete(ds) {
        // Ready outdated pods are replaced only within the unavailability budget.
        let budget = max_unavailable(ds, desired).saturating_sub(unavailable);
        outdated.sort_by_key(|p| is_ready(p));
        let (not_ready, ready_old): (Vec<_>, Vec<_>) =
            outdated.into_iter().partition(|p| !is_ready(p));
        out.delete.extend(not_ready);
        out.delete.extend(ready_old.into_iter().take(budget));
    }
    out.status = serde_json::json!({
        "desiredNumberScheduled": desired,
        "currentNumberScheduled": scheduled,
        "numberMisscheduled": misscheduled,
        "numberReady": ready,
        "numberAvailable": ready,
        "numberUnavailable": desired.saturating_sub(ready),
        "updatedNumberScheduled": updated,
        "observedGeneration": ds.metadata.generation.unwrap_or(0),
    });
    out
}

pub async fn apply(client: &kube::Client, ds: &DaemonSet, p: &DsPlan) -> usize {
    let ns = ds.metadata.namespace.clone().unwrap_or_default();
    let name = ds.metadata.name.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut failed = 0;
    for node in &p.create_on {
        let Some(pod) = daemon_pod(ds, node) else {
            continue;
        };
        match pods.create(&PostParams::default(), &pod).await {
            Ok(_) => tracing::info!(daemonset = %name, node = %node, "created daemon pod"),
            Err(e) => {
                tracing::info!(daemonset = %name, node = %node, error = %e, "creating daemon pod failed");
                failed += 1;
            }
        }
    }
    for pod in &p.delete {
        let pname = pod.metadata.name.clone().unwrap_or_default();
        match pods.delete(&pname, &DeleteParams::default()).await {
            Ok(_) => tracing::info!(daemonset = %name, pod = %pname, "deleted daemon pod"),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                tracing::info!(daemonset = %name, pod = %pname, error = %e, "deleting daemon pod failed");
                failed += 1;
            }
        }
    }
    let current = serde_json::to_value(ds.status.clone().unwrap_or_default()).unwrap_or_default();
    let differs = p.status.as_object().into_iter().flatten().any(|(k, v)| {
        current.get(k).and_then(|x| x.as_i64()).unwrap_or(0) != v.as_i64().unwrap_or(0)
    });
    if differs {
        let api: Api<DaemonSet> = Api::namespaced(client.clone(), &ns);
        if let Err(e) = api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&serde_json::json!({"status": p.status})),
            )
            .await
        {
            tracing::info!(daemonset = %name, error = %e, "updating status failed");
            failed += 1;
        }
    }
    failed
}

/// Pods per namespace, for the loop.
pub fn by_namespace(pods: &[Arc<Pod>]) -> HashMap<String, Vec<Arc<Pod>>> {
    let mut m: HashMap<String, Vec<Arc<Pod>>> = HashMap::new();
    for p in pods {
        m.entry(p.metadata.namespace.clone().unwrap_or_default())
            .or_default()
            .push(p.clone());
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DaemonSetSpec;
    use k8s_openapi::api::core::v1::{
        NodeCondition, NodeSpec, NodeStatus, PodSpec, PodTemplateSpec, Taint,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn ds(selector_zone: Option<&str>) -> DaemonSet {
        let labels = BTreeMap::from([("app".to_string(), "agent".to_string())]);
        DaemonSet {
            metadata: ObjectMeta {
                name: Some("agent".into()),
                namespace: Some("kube-system".into()),
                uid: Some("ds-uid".into()),
                generation: Some(1),
                ..Default::default()
            },
            spec: Some(DaemonSetSpec {
                selector: LabelSelector {
                    match_labels: Some(labels.clone()),
                    ..Default::default()
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        node_selector: selector_zone
                            .map(|z| BTreeMap::from([("zone".to_string(), z.to_string())])),
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            status: None,
        }
    }

    fn node(name: &str, zone: &str, taint: Option<&str>) -> Arc<Node> {
        Arc::new(Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(BTreeMap::from([("zone".to_string(), zone.to_string())])),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: taint.map(|k| {
                    vec![Taint {
                        key: k.into(),
                        effect: "NoSchedule".into(),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        })
    }

    fn running(pod: Pod) -> Arc<Pod> {
        let mut pod = pod;
        pod.metadata.uid = pod.metadata.name.clone();
        Arc::new(pod)
    }

    #[test]
    fn one_pod_per_eligible_node() {
        let d = ds(Some("a"));
        let nodes = [
            node("n1", "a", None),
            node("n2", "b", None),
            node("n3", "a", Some("dedicated")),
            node("n4", "a", Some("node.kubernetes.io/unschedulable")),
        ];
        let p = plan(&d, &nodes, &[]);
        assert_eq!(p.create_on, vec!["n1", "n4"]);
    }

    #[test]
    fn pods_leave_nodes_that_left_or_no_longer_match() {
        let d = ds(Some("a"));
        let on_n1 = running(daemon_pod(&d, "n1").unwrap());
        let on_gone = running(daemon_pod(&d, "gone").unwrap());
        let on_b = running(daemon_pod(&d, "n2").unwrap());
        let nodes = [node("n1", "a", None), node("n2", "b", None)];
        let p = plan(&d, &nodes, &[on_n1, on_gone.clone(), on_b.clone()]);
        assert!(p.create_on.is_empty());
        let gone: Vec<_> = p.delete.iter().map(|x| x.metadata.name.clone()).collect();
        assert!(gone.contains(&on_gone.metadata.name));
        assert!(gone.contains(&on_b.metadata.name));
        assert_eq!(p.status["numberMisscheduled"], 1);
    }

    #[test]
    fn a_new_generation_replaces_one_pod_at_a_time() {
        let mut d = ds(None);
        let old: Vec<Arc<Pod>> = ["n1", "n2", "n3"]
            .iter()
            .map(|n| {
                let mut p = daemon_pod(&d, n).unwrap();
                p.status = Some(k8s_openapi::api::core::v1::PodStatus {
                    phase: Some("Running".into()),
                    conditions: Some(vec![k8s_openapi::api::core::v1::PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        ..Default::default()
                    }]),
                    ..Default::default()
                });
                running(p)
            })
            .collect();
        d.metadata.generation = Some(2);
        let nodes = [
            node("n1", "a", None),
            node("n2", "a", None),
            node("n3", "a", None),
        ];
        let p = plan(&d, &nodes, &old);
        assert_eq!(p.delete.len(), 1);
        assert_eq!(p.status["updatedNumberScheduled"], 0);
    }
}
