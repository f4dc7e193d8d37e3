//! Replica plans, expectations and the pod a template makes.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::in_flight::InFlight;
use super::plan::*;

use k8s_openapi::api::apps::v1::ReplicaSetSpec;
use k8s_openapi::api::core::v1::{PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

fn rs(replicas: i32) -> ReplicaSet {
    let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("rs-uid".into()),
            generation: Some(3),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..Default::default()
            },
            template: Some(PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec::default()),
            }),
            ..Default::default()
        }),
        status: None,
    }
}

fn pod(name: &str, app: &str, owner: Option<&str>) -> Arc<Pod> {
    Arc::new(Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            uid: Some(format!("{name}-uid")),
            labels: Some(BTreeMap::from([("app".to_string(), app.to_string())])),
            owner_references: owner.map(|u| {
                vec![OwnerReference {
                    uid: u.into(),
                    controller: Some(true),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        },
        spec: Some(PodSpec::default()),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            ..Default::default()
        }),
    })
}

#[test]
fn creates_the_difference() {
    let p = plan(&rs(3), &[pod("a", "web", Some("rs-uid"))]);
    assert_eq!(p.create, 2);
    assert!(p.delete.is_empty());
    assert_eq!(p.status.replicas, 1);
    assert_eq!(p.status.observed_generation, 3);
}

#[test]
fn deletes_surplus_and_ignores_others() {
    let pods = [
        pod("a", "web", Some("rs-uid")),
        pod("b", "web", Some("rs-uid")),
        pod("c", "web", Some("other")),
        pod("d", "db", None),
    ];
    let p = plan(&rs(1), &pods);
    assert_eq!(p.create, 0);
    assert_eq!(p.delete.len(), 1);
    assert!(p.adopt.is_empty());
}

#[test]
fn adopts_orphans_and_releases_mismatches() {
    let pods = [pod("a", "web", None), pod("b", "db", Some("rs-uid"))];
    let p = plan(&rs(1), &pods);
    assert_eq!(p.adopt.len(), 1);
    assert_eq!(p.release.len(), 1);
    assert_eq!(p.create, 0);
}

#[test]
fn in_flight_creates_count_until_seen() {
    let mut fl = InFlight::default();
    fl.created((*pod("n1", "web", Some("rs-uid"))).clone());
    let view = fl.apply(&[]);
    assert_eq!(plan(&rs(1), &view).create, 0);
    // Seen by the watch: the expectation is dropped, the pod still counts.
    let store = [pod("n1", "web", Some("rs-uid"))];
    assert_eq!(fl.apply(&store).len(), 1);
    assert!(fl.created.is_empty());
}

#[test]
fn template_pods_are_owned_and_named() {
    let p = pod_from_template(&rs(1)).unwrap();
    assert!(p.metadata.name.unwrap().starts_with("web-"));
    let o = &p.metadata.owner_references.unwrap()[0];
    assert_eq!((o.kind.as_str(), o.uid.as_str()), ("ReplicaSet", "rs-uid"));
}
