//! The collector's plan on small snapshots, and the guarded list patch.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use capstan_control_contract::finalizers::{FOREGROUND, ORPHAN};
use serde_json::json;

use super::apply::replace_if_unchanged;
use super::plan::*;
use super::*;

fn node(kind: &'static Kind, uid: &str, owners: Vec<OwnerReference>) -> Node {
    Node {
        kind,
        namespace: "ns".into(),
        name: uid.into(),
        uid: uid.into(),
        owners,
        finalizers: Vec::new(),
        deleting: false,
    }
}

fn oref(kind: &Kind, uid: &str, block: bool) -> OwnerReference {
    OwnerReference {
        api_version: kind.api_version(),
        kind: kind.kind.into(),
        name: uid.into(),
        uid: uid.into(),
        controller: Some(true),
        block_owner_deletion: block.then_some(true),
    }
}

fn deleting(mut n: Node, finalizer: &str) -> Node {
    n.deleting = true;
    n.finalizers.push(finalizer.into());
    n
}

#[test]
fn background_collects_dependents_of_gone_known_owners() {
    let objs = vec![
        node(&REPLICA_SET, "alive", vec![]),
        node(&POD, "p1", vec![oref(&REPLICA_SET, "dead", true)]),
        node(&POD, "p2", vec![oref(&REPLICA_SET, "alive", true)]),
        node(&POD, "p3", vec![]),
        // An owner of a kind we don't watch keeps the object.
        node(
            &POD,
            "p4",
            vec![OwnerReference {
                api_version: "batch/v1".into(),
                kind: "Job".into(),
                uid: "dead".into(),
                ..Default::default()
            }],
        ),
        node(
            &POD,
            "p5",
            vec![
                oref(&REPLICA_SET, "dead", true),
                oref(&REPLICA_SET, "alive", true),
            ],
        ),
    ];
    assert_eq!(
        plan(&objs),
        vec![Action::Delete {
            target: 1,
            foreground: false,
            unconfirmed: vec![oref(&REPLICA_SET, "dead", true)],
        }]
    );
}

#[test]
fn foreground_deletes_down_the_chain_then_releases_owner() {
    let d = deleting(node(&DEPLOYMENT, "d", vec![]), FOREGROUND);
    let rs = node(&REPLICA_SET, "rs", vec![oref(&DEPLOYMENT, "d", true)]);
    let pod = node(&POD, "p", vec![oref(&REPLICA_SET, "rs", true)]);
    // The RS has pods, so it goes in the foreground too; the deployment waits.
    assert_eq!(
        plan(&[d.clone(), rs.clone(), pod.clone()]),
        vec![Action::Delete {
            target: 1,
            foreground: true,
            unconfirmed: vec![],
        }]
    );
    // RS now deleting in the foreground: its pod is deleted in the background.
    let rs = deleting(rs, FOREGROUND);
    assert_eq!(
        plan(&[d.clone(), rs.clone(), pod]),
        vec![Action::Delete {
            target: 2,
            foreground: false,
            unconfirmed: vec![],
        }]
    );
    // Pod gone: the RS's finalizer goes; the deployment still waits.
    assert_eq!(
        plan(&[d.clone(), rs]),
        vec![Action::RemoveFinalizer {
            target: 1,
            finalizer: FOREGROUND,
        }]
    );
    // RS gone: the deployment's finalizer goes.
    assert_eq!(
        plan(&[d]),
        vec![Action::RemoveFinalizer {
            target: 0,
            finalizer: FOREGROUND,
        }]
    );
}

#[test]
fn foreground_waits_only_for_blocking_dependents() {
    let d = deleting(node(&REPLICA_SET, "rs", vec![]), FOREGROUND);
    let p = node(&POD, "p", vec![oref(&REPLICA_SET, "rs", false)]);
    let a = plan(&[d, p]);
    assert!(a.contains(&Action::RemoveFinalizer {
        target: 0,
        finalizer: FOREGROUND
    }));
    assert!(a.contains(&Action::Delete {
        target: 1,
        foreground: false,
        unconfirmed: vec![],
    }));
}

#[test]
fn dependent_with_another_live_owner_is_released_not_deleted() {
    let waiting = deleting(node(&REPLICA_SET, "a", vec![]), FOREGROUND);
    let alive = node(&REPLICA_SET, "b", vec![]);
    let p = node(
        &POD,
        "p",
        vec![
            oref(&REPLICA_SET, "a", true),
            oref(&REPLICA_SET, "b", false),
        ],
    );
    assert_eq!(
        plan(&[waiting, alive, p]),
        vec![Action::DropOwners {
            target: 2,
            uids: vec!["a".into()],
        }]
    );
}

#[test]
fn orphan_cuts_references_then_releases_owner() {
    let d = deleting(node(&DEPLOYMENT, "d", vec![]), ORPHAN);
    let rs = node(&REPLICA_SET, "rs", vec![oref(&DEPLOYMENT, "d", true)]);
    let pod = node(&POD, "p", vec![oref(&REPLICA_SET, "rs", true)]);
    assert_eq!(
        plan(&[d.clone(), rs, pod.clone()]),
        vec![Action::DropOwners {
            target: 1,
            uids: vec!["d".into()],
        }]
    );
    let rs = node(&REPLICA_SET, "rs", vec![]);
    assert_eq!(
        plan(&[d, rs, pod]),
        vec![Action::RemoveFinalizer {
            target: 0,
            finalizer: ORPHAN,
        }]
    );
}

#[test]
fn finalizer_kinds_are_the_watched_owners() {
    assert!(tracks_owner("apps/v1", "Deployment"));
    assert!(tracks_owner("v1", "ReplicationController"));
    assert!(!tracks_owner("v1", "ConfigMap"));
    assert!(!tracks_owner("v1", "Pod"));
}

#[test]
fn finalizer_patch_tests_what_was_seen() {
    let p = replace_if_unchanged("/metadata/finalizers", &["a", "b"], &["b"]).unwrap();
    let v = serde_json::to_value(&p).unwrap();
    assert_eq!(v[0]["op"], "test");
    assert_eq!(v[1]["value"], json!(["b"]));
    let p = replace_if_unchanged::<&str>("/metadata/finalizers", &["a"], &[]).unwrap();
    assert_eq!(serde_json::to_value(&p).unwrap()[1]["op"], "remove");
}
