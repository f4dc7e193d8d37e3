//! The DaemonSet plan: placement, replacement without and with surge,
//! availability after minReadySeconds, and the status it reports.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, DaemonSetUpdateStrategy, RollingUpdateDaemonSet,
};
use k8s_openapi::api::core::v1::{
    Node, NodeCondition, NodeSpec, NodeStatus, Pod, PodCondition, PodSpec, PodStatus,
    PodTemplateSpec, Taint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::plan::{plan, surge_and_unavailable};
use super::pod::{daemon_pod, TEMPLATE_GENERATION};

fn ds(selector_zone: Option<&str>) -> DaemonSet {
    let labels = BTreeMap::from([("app".to_string(), "agent".to_string())]);
    DaemonSet {
        metadata: ObjectMeta {
            name: Some("agent".into()),
            namespace: Some("kube-system".into()),
            uid: Some("ds-uid".into()),
            generation: Some(1),
            annotations: Some(BTreeMap::from([(
                TEMPLATE_GENERATION.to_string(),
                "1".to_string(),
            )])),
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

/// `d` with a new template (as `kubectl rollout restart` makes it).
fn restarted(d: &DaemonSet) -> DaemonSet {
    let mut d = d.clone();
    d.metadata.generation = Some(2);
    d.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(TEMPLATE_GENERATION.into(), "2".into());
    let spec = d.spec.as_mut().unwrap();
    spec.template.metadata.as_mut().unwrap().annotations = Some(BTreeMap::from([(
        "kubectl.kubernetes.io/restartedAt".to_string(),
        "now".to_string(),
    )]));
    d
}

fn with_strategy(mut d: DaemonSet, surge: i32, unavailable: i32) -> DaemonSet {
    d.spec.as_mut().unwrap().update_strategy = Some(DaemonSetUpdateStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDaemonSet {
            max_surge: Some(IntOrString::Int(surge)),
            max_unavailable: Some(IntOrString::Int(unavailable)),
        }),
    });
    d
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

fn nodes(names: &[&str]) -> Vec<Arc<Node>> {
    names.iter().map(|n| node(n, "a", None)).collect()
}

fn now() -> Timestamp {
    Timestamp::now()
}

/// A pod of `d` on `node`, made `age` seconds ago, ready since then or not.
fn pod_of(d: &DaemonSet, node: &str, ready: bool, age: i64) -> Arc<Pod> {
    let mut p = daemon_pod(d, node).unwrap();
    p.metadata.uid = p.metadata.name.clone();
    let since = now() - SignedDuration::from_secs(age);
    p.metadata.creation_timestamp = Some(Time(since));
    p.status = Some(PodStatus {
        phase: Some("Running".into()),
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            last_transition_time: Some(Time(since)),
            ..Default::default()
        }]),
        ..Default::default()
    });
    Arc::new(p)
}

fn names(v: &[Arc<Pod>]) -> Vec<String> {
    let mut n: Vec<String> = v.iter().filter_map(|p| p.metadata.name.clone()).collect();
    n.sort();
    n
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
    let p = plan(&d, &nodes, &[], now(), true);
    assert_eq!(p.create_on, vec!["n1", "n4"]);
    assert_eq!(p.status["desiredNumberScheduled"], 2);
    assert_eq!(p.status["numberUnavailable"], 2);
}

#[test]
fn pods_leave_nodes_that_left_or_no_longer_match() {
    let d = ds(Some("a"));
    let on_n1 = pod_of(&d, "n1", true, 100);
    let on_gone = pod_of(&d, "gone", true, 100);
    let on_b = pod_of(&d, "n2", true, 100);
    let nodes = [node("n1", "a", None), node("n2", "b", None)];
    let p = plan(
        &d,
        &nodes,
        &[on_n1, on_gone.clone(), on_b.clone()],
        now(),
        true,
    );
    assert!(p.create_on.is_empty());
    assert_eq!(names(&p.delete), names(&[on_gone, on_b]));
    assert_eq!(p.status["numberMisscheduled"], 1);
}

#[test]
fn extra_and_failed_pods_go_and_the_oldest_stays() {
    let d = ds(None);
    let old = pod_of(&d, "n1", true, 100);
    let young = pod_of(&d, "n1", true, 10);
    let mut failed = (*pod_of(&d, "n2", false, 50)).clone();
    failed.status.as_mut().unwrap().phase = Some("Failed".into());
    let failed = Arc::new(failed);
    let p = plan(
        &d,
        &nodes(&["n1", "n2"]),
        &[old, young.clone(), failed.clone()],
        now(),
        true,
    );
    assert_eq!(names(&p.delete), names(&[young, failed]));
    assert_eq!(p.create_on, vec!["n2"]);
}

#[test]
fn a_new_template_replaces_max_unavailable_pods_at_a_time() {
    let d = ds(None);
    let all = nodes(&["n1", "n2", "n3"]);
    let old: Vec<Arc<Pod>> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| pod_of(&d, n, true, 100))
        .collect();
    let d2 = restarted(&d);
    let p = plan(&d2, &all, &old, now(), true);
    assert_eq!(p.delete.len(), 1);
    assert!(p.create_on.is_empty());
    assert_eq!(p.status["updatedNumberScheduled"], 0);
    assert_eq!(p.status["observedGeneration"], 2);
    // Not while the last pass's writes are unseen, and the generation is
    // then not claimed observed either.
    let p = plan(&d2, &all, &old, now(), false);
    assert!(p.delete.is_empty());
    assert_eq!(p.status["observedGeneration"], 0);
    // With 2 unavailable allowed: two at once.
    let wide = with_strategy(d2.clone(), 0, 2);
    assert_eq!(plan(&wide, &all, &old, now(), true).delete.len(), 2);
    // Once one node runs a ready new pod, the next old one goes.
    let mut pods = vec![pod_of(&d2, "n1", true, 5)];
    pods.extend(old[1..].iter().cloned());
    let p = plan(&d2, &all, &pods, now(), true);
    assert_eq!(p.delete.len(), 1);
    assert_eq!(p.status["updatedNumberScheduled"], 1);
    // A not-ready new pod uses the budget up.
    let mut pods = vec![pod_of(&d2, "n1", false, 5)];
    pods.extend(old[1..].iter().cloned());
    assert!(plan(&d2, &all, &pods, now(), true).delete.is_empty());
}

#[test]
fn only_template_changes_replace_pods() {
    let d = ds(None);
    let all = nodes(&["n1", "n2"]);
    let old: Vec<Arc<Pod>> = ["n1", "n2"]
        .iter()
        .map(|n| pod_of(&d, n, true, 100))
        .collect();
    let mut wider = with_strategy(d.clone(), 0, 2);
    wider.metadata.generation = Some(2);
    let p = plan(&wider, &all, &old, now(), true);
    assert!(p.delete.is_empty() && p.create_on.is_empty());
    assert_eq!(p.status["updatedNumberScheduled"], 2);
    assert_eq!(p.status["numberAvailable"], 2);
}

#[test]
fn surge_makes_the_new_pod_before_the_old_one_goes() {
    let d = with_strategy(ds(None), 1, 0);
    let all = nodes(&["n1", "n2"]);
    let old: Vec<Arc<Pod>> = ["n1", "n2"]
        .iter()
        .map(|n| pod_of(&d, n, true, 100))
        .collect();
    let d2 = restarted(&d);
    let p = plan(&d2, &all, &old, now(), true);
    assert!(p.delete.is_empty(), "{:?}", names(&p.delete));
    assert_eq!(p.create_on, vec!["n1"]);
    // The new pod is not ready yet: both stay, no more surge.
    let new1 = pod_of(&d2, "n1", false, 1);
    let pods = vec![old[0].clone(), new1, old[1].clone()];
    let p = plan(&d2, &all, &pods, now(), true);
    assert!(p.delete.is_empty() && p.create_on.is_empty());
    assert_eq!(p.status["numberAvailable"], 2);
    // Ready: the old pod on n1 goes.
    let new1 = pod_of(&d2, "n1", true, 1);
    let pods = vec![old[0].clone(), new1, old[1].clone()];
    let p = plan(&d2, &all, &pods, now(), true);
    assert_eq!(names(&p.delete), names(&old[..1]));
    assert!(p.create_on.is_empty());
    // n1 done: n2 surges next.
    let pods = vec![pod_of(&d2, "n1", true, 1), old[1].clone()];
    let p = plan(&d2, &all, &pods, now(), true);
    assert_eq!(p.create_on, vec!["n2"]);
    assert!(p.delete.is_empty());
    assert_eq!(p.status["updatedNumberScheduled"], 1);
    assert_eq!(surge_and_unavailable(&d2, 2), (1, 0));
}

#[test]
fn min_ready_seconds_holds_availability_and_asks_to_look_again() {
    let mut d = ds(None);
    d.spec.as_mut().unwrap().min_ready_seconds = Some(30);
    let all = nodes(&["n1", "n2"]);
    let pods = vec![pod_of(&d, "n1", true, 100), pod_of(&d, "n2", true, 10)];
    let p = plan(&d, &all, &pods, now(), true);
    assert_eq!(p.status["numberReady"], 2);
    assert_eq!(p.status["numberAvailable"], 1);
    assert_eq!(p.status["numberUnavailable"], 1);
    let wait = p.requeue_after.expect("a requeue");
    assert!(wait.as_secs() <= 20 && wait.as_secs() >= 15, "{wait:?}");
}

#[test]
fn on_delete_never_replaces() {
    let mut d = ds(None);
    d.spec.as_mut().unwrap().update_strategy = Some(DaemonSetUpdateStrategy {
        type_: Some("OnDelete".into()),
        rolling_update: None,
    });
    let old = vec![pod_of(&d, "n1", true, 100)];
    let p = plan(&restarted(&d), &nodes(&["n1"]), &old, now(), true);
    assert!(p.delete.is_empty());
    assert_eq!(p.status["updatedNumberScheduled"], 0);
}
