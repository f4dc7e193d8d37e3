//! Carrying out the collector's actions through the API: a dependent is
//! deleted only after a live GET confirmed its owner gone, and list edits
//! (owner references, finalizers) are JSON patches guarded by a test of
//! what was seen, so a concurrent writer is never overwritten.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use serde_json::json;

use super::plan::{plan, Action, Node};
use capstan_control_contract::owner_kinds::{Kind, OWNERS};

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
pub(super) fn replace_if_unchanged<T: serde::Serialize>(
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
