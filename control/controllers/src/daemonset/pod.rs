//! One DaemonSet pod: the pod made for a node (template, labels naming the
//! template's hash and generation, the daemon tolerations), whether a node
//! may run it, and the facts a rollout asks of a pod (current template?
//! available for minReadySeconds?). Pure.

use std::cmp::Ordering;
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;

use crate::pods::{generate_name, is_ready, node_name};
use crate::replicas::owner_ref;
use crate::scheduler::filter;
use crate::scheduler::node_info::NodeInfo;

/// The template generation a pod was made from (Kubernetes' label).
pub const GENERATION_LABEL: &str = "pod-template-generation";
/// The template hash a pod was made from (Kubernetes' label name).
pub const HASH_LABEL: &str = "controller-revision-hash";
/// Where the API server keeps the DaemonSet's template generation.
pub const TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

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

/// The DaemonSet's template generation, as the API server annotates it.
pub fn template_generation(ds: &DaemonSet) -> Option<&str> {
    ds.metadata
        .annotations
        .as_ref()?
        .get(TEMPLATE_GENERATION)
        .map(String::as_str)
}

/// The hash of the DaemonSet's pod template.
pub fn template_hash(ds: &DaemonSet) -> String {
    ds.spec
        .as_ref()
        .map(|s| crate::deployment::template_hash(&s.template))
        .unwrap_or_default()
}

/// Made from the current template: its hash or its generation matches
/// (Kubernetes' `IsPodUpdated`).
pub fn is_updated(pod: &Pod, hash: &str, generation: Option<&str>) -> bool {
    let label = |k: &str| pod.metadata.labels.as_ref().and_then(|l| l.get(k));
    (!hash.is_empty() && label(HASH_LABEL).map(String::as_str) == Some(hash))
        || generation.is_some_and(|g| label(GENERATION_LABEL).map(String::as_str) == Some(g))
}

/// Ready for at least `min_ready` seconds (Kubernetes' `IsPodAvailable`);
/// when ready but not yet long enough, how long until it will be.
pub fn availability(pod: &Pod, min_ready: i32, now: Timestamp) -> (bool, Option<Duration>) {
    if !is_ready(pod) {
        return (false, None);
    }
    if min_ready <= 0 {
        return (true, None);
    }
    let since = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0);
    let Some(since) = since else {
        return (false, None);
    };
    let ready_for = now.duration_since(since).as_secs_f64();
    let need = f64::from(min_ready);
    if ready_for > need {
        (true, None)
    } else {
        (false, Some(Duration::from_secs_f64(need - ready_for)))
    }
}

/// Kubernetes' `podByCreationTimestampAndPhase`: scheduled first, then the
/// oldest, then by name.
pub fn creation_order(a: &Pod, b: &Pod) -> Ordering {
    node_name(b)
        .is_some()
        .cmp(&node_name(a).is_some())
        .then_with(|| {
            let t = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            t(a).cmp(&t(b))
        })
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// The pod this DaemonSet runs on `node`.
pub fn daemon_pod(ds: &DaemonSet, node: &str) -> Option<Pod> {
    let spec = ds.spec.as_ref()?;
    let name = ds.metadata.name.clone()?;
    let tm = spec.template.metadata.clone().unwrap_or_default();
    let mut labels = tm.labels.unwrap_or_default();
    labels.insert(HASH_LABEL.into(), template_hash(ds));
    if let Some(g) = template_generation(ds) {
        labels.insert(GENERATION_LABEL.into(), g.to_string());
    }
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
            c.ports = None;
        }
        s.init_containers = None;
        s.node_name = None;
    }
    let why = filter::filter(&pod, node, &NodeInfo::from_node(node));
    why.is_empty() || why == [filter::REASON_NOT_READY]
}
