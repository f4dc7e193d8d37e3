//! Garbage collection over the kinds this control plane watches, with the
//! three propagation policies: background (a dependent whose owners are all
//! gone is deleted), foreground (dependents of an owner carrying the
//! `foregroundDeletion` finalizer are deleted, and the finalizer removed
//! once no dependent blocks) and orphan (the owner's references are cut
//! from its dependents, then the `orphan` finalizer removed). `plan` is a
//! pure function over one snapshot; `apply` never deletes a dependent
//! whose owner it has not confirmed gone with a live GET, since the
//! dependent may simply be newer than this process's view of its owner.

use std::collections::{HashMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use serde_json::json;

use capstan_control_contract::finalizers::{FOREGROUND, ORPHAN};
pub use capstan_control_contract::owner_kinds::{
    tracks_owner, Kind, DAEMON_SET, DEPLOYMENT, ENDPOINT_SLICE, OWNERS, POD,
    REPLICATION_CONTROLLER, REPLICA_SET, SERVICE,
};

/// The API resource kube-rs needs to reach a collected kind.
fn api_resource(kind: &Kind) -> ApiResource {
    ApiResource {
        group: kind.group.into(),
        version: kind.version.into(),
        api_version: kind.api_version(),
        kind: kind.kind.into(),
        plural: kind.plural.into(),
    }
}

/// One object of the snapshot, owner or dependent.
#[derive(Clone, Debug)]
pub struct Node {
    pub kind: &'static Kind,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub owners: Vec<OwnerReference>,
    pub finalizers: Vec<String>,
    pub deleting: bool,
}

impl Node {
    pub fn new(kind: &'static Kind, m: &ObjectMeta) -> Node {
        Node {
            kind,
            namespace: m.namespace.clone().unwrap_or_default(),
            name: m.name.clone().unwrap_or_default(),
            uid: m.uid.clone().unwrap_or_default(),
            owners: m.owner_references.clone().unwrap_or_default(),
            finalizers: m.finalizers.clone().unwrap_or_default(),
            deleting: m.deletion_timestamp.is_some(),
        }
    }

    fn has(&self, finalizer: &str) -> bool {
        self.finalizers.iter().any(|f| f == finalizer)
    }
}

/// What the collector does to one object.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Delete a dependent (with `foreground` when it has dependents of its
    /// own and an owner waits for it), once the `unconfirmed` owners are
    /// confirmed gone.
    Delete {
        target: usize,
        foreground: bool,
        unconfirmed: Vec<OwnerReference>,
    },
    /// Cut the references to these owner UIDs.
    DropOwners { target: usize, uids: Vec<String> },
    RemoveFinalizer {
        target: usize,
        finalizer: &'static str,
    },
}

/// How a dependent stands towards one of its owners.
enum Standing {
    /// Alive, or of a kind not watched here: keeps the dependent.
    Solid,
    /// Being deleted in the foreground: waits for the dependent to go.
    Waiting,
    /// Deleting with the orphan finalizer: the reference is to be cut.
    Orphaning,
    /// Not in the snapshot.
    Absent,
}

/// The collector's actions for one snapshot (indices into `objects`).
pub fn plan(objects: &[Node]) -> Vec<Action> {
    let by_uid: HashMap<&str, &Node> = objects.iter().map(|o| (o.uid.as_str(), o)).collect();
    let mut has_dependents: HashSet<&str> = HashSet::new();
    let mut blocked: HashSet<&str> = HashSet::new();
    let mut referenced: HashSet<&str> = HashSet::new();
    for o in objects {
        for r in &o.owners {
            has_dependents.insert(r.uid.as_str());
            referenced.insert(r.uid.as_str());
            if r.block_owner_deletion == Some(true) {
                blocked.insert(r.uid.as_str());
            }
        }
    }
    let mut actions = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        if o.deleting && o.kind.owner {
            if o.has(ORPHAN) && !referenced.contains(o.uid.as_str()) {
                actions.push(Action::RemoveFinalizer {
                    target: i,
                    finalizer: ORPHAN,
                });
            } else if o.has(FOREGROUND) && !o.has(ORPHAN) && !blocked.contains(o.uid.as_str()) {
                actions.push(Action::RemoveFinalizer {
                    target: i,
                    finalizer: FOREGROUND,
                });
            }
        }
        if o.owners.is_empty() {
            continue;
        }
        let mut solid = false;
        let mut waiting = Vec::new();
        let mut cut = Vec::new();
        let mut absent = Vec::new();
        for r in &o.owners {
            let standing = match by_uid.get(r.uid.as_str()) {
                _ if !tracks_owner(&r.api_version, &r.kind) => Standing::Solid,
                None => Standing::Absent,
                Some(owner) if owner.deleting && owner.has(ORPHAN) => Standing::Orphaning,
                Some(owner) if owner.deleting && owner.has(FOREGROUND) => Standing::Waiting,
                Some(_) => Standing::Solid,
            };
            match standing {
                Standing::Solid => solid = true,
                Standing::Waiting => waiting.push(r.uid.clone()),
                Standing::Orphaning => {
                    // An orphaning owner no longer holds the dependent.
                    cut.push(r.uid.clone());
                }
                Standing::Absent => absent.push(r.clone()),
            }
        }
        if !cut.is_empty() {
            actions.push(Action::DropOwners {
                target: i,
                uids: cut,
            });
            continue;
        }
        if o.deleting {
            continue;
        }
        if solid {
            // Still wanted by someone: a foreground owner stops waiting.
            if !waiting.is_empty() {
                actions.push(Action::DropOwners {
                    target: i,
                    uids: waiting,
                });
            }
            continue;
        }
        actions.push(Action::Delete {
            target: i,
            foreground: !waiting.is_empty() && has_dependents.contains(o.uid.as_str()),
            unconfirmed: absent,
        });
    }
    actions
}

fn api(client: &kube::Client, kind: &Kind, ns: &str) -> Api<DynamicObject> {
    let ar = api_resource(kind);
    if ns.is_empty() {
        Api::all_with(client.clone(), &ar)
    } else {
        Api::namespaced_with(client.clone(), ns, &ar)
    }
}

/// Whether the owner a reference names still exists (same UID), by GET.
async fn owner_exists(
    client: &kube::Client,
    ns: &str,
    o: &OwnerReference,
) -> Result<bool, kube::Error> {
    let Some(kind) = OWNERS
        .iter()
        .find(|k| k.kind == o.kind && k.api_version() == o.api_version)
    else {
        return Ok(true);
    };
    Ok(api(client, kind, ns)
        .get_opt(&o.name)
        .await?
        .is_some_and(|x| x.metadata.uid.as_deref() == Some(o.uid.as_str())))
}

/// A JSON patch that replaces a list only if it is still what we saw.
fn replace_if_unchanged<T: serde::Serialize>(
    path: &str,
    seen: &[T],
    want: &[T],
) -> Result<json_patch::Patch, serde_json::Error> {
    let mut ops = vec![json!({"op": "test", "path": path, "value": seen})];
    if want.is_empty() {
        ops.push(json!({"op": "remove", "path": path}));
    } else {
        ops.push(json!({"op": "replace", "path": path, "value": want}));
    }
    serde_json::from_value(json!(ops))
}

async fn patch_list<T: serde::Serialize>(
    client: &kube::Client,
    o: &Node,
    path: &str,
    seen: &[T],
    want: &[T],
) -> Result<(), String> {
    let p = replace_if_unchanged(path, seen, want).map_err(|e| e.to_string())?;
    api(client, o.kind, &o.namespace)
        .patch(&o.name, &PatchParams::default(), &Patch::<()>::Json(p))
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Carries out one action; returns whether it failed (to be retried).
async fn apply_one(client: &kube::Client, objects: &[Node], a: &Action) -> bool {
    let result = match a {
        Action::Delete {
            target,
            foreground,
            unconfirmed,
        } => {
            let o = &objects[*target];
            for r in unconfirmed {
                match owner_exists(client, &o.namespace, r).await {
                    Ok(false) => {}
                    // Alive after all (our view lagged), or unknown: keep.
                    Ok(true) => return false,
                    Err(_) => return true,
                }
            }
            let dp = if *foreground {
                DeleteParams::foreground()
            } else {
                DeleteParams::background()
            };
            match api(client, o.kind, &o.namespace).delete(&o.name, &dp).await {
                Ok(_) => {
                    tracing::info!(kind = o.kind.kind, name = %o.name, namespace = %o.namespace, foreground, "garbage-collected a dependent");
                    Ok(())
                }
                Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        }
        Action::DropOwners { target, uids } => {
            let o = &objects[*target];
            let want: Vec<OwnerReference> = o
                .owners
                .iter()
                .filter(|r| !uids.contains(&r.uid))
                .cloned()
                .collect();
            let r = patch_list(client, o, "/metadata/ownerReferences", &o.owners, &want).await;
            if r.is_ok() {
                tracing::info!(kind = o.kind.kind, name = %o.name, namespace = %o.namespace, ?uids, "dropped owner references");
            }
            r
        }
        Action::RemoveFinalizer { target, finalizer } => {
            let o = &objects[*target];
            let want: Vec<String> = o
                .finalizers
                .iter()
                .filter(|f| f != finalizer)
                .cloned()
                .collect();
            let r = patch_list(client, o, "/metadata/finalizers", &o.finalizers, &want).await;
            if r.is_ok() {
                tracing::info!(kind = o.kind.kind, name = %o.name, namespace = %o.namespace, finalizer, "dependents handled, finalizer removed");
            }
            r
        }
    };
    match result {
        Ok(()) => false,
        Err(e) if e.contains("NotFound") || e.contains("404") => false,
        Err(e) => {
            tracing::info!(?a, error = %e, "garbage collection step failed");
            true
        }
    }
}

/// Plans and applies one pass; returns how many steps failed.
pub async fn pass(client: &kube::Client, objects: &[Node]) -> usize {
    let mut failed = 0;
    for a in plan(objects) {
        if apply_one(client, objects, &a).await {
            failed += 1;
        }
    }
    failed
}

#[cfg(test)]
mod tests {
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
}
