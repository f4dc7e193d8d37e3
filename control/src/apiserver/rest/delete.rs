//! Delete: preconditions, graceful deletion of pods bound to a node,
//! finalizers, allocations released with the object, namespace contents,
//! and deletecollection.

use serde_json::{json, Value};

use super::create::releases;
use super::list::{list, ListOptions};
use super::{conflict, dir_path, encode, get, object_path, subject, with_rv, UPDATE_RETRIES};
use crate::apiserver::registry::meta;
use crate::apiserver::resources::Resource;
use crate::apiserver::status::ApiError;
use crate::apiserver::storage::{Expect, Write, WriteOutcome};
use crate::apiserver::ApiServer;

#[derive(Debug, Default, Clone)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
}

impl DeleteOptions {
    /// From a `DeleteOptions` body (may be empty).
    pub fn from_body(body: &Value) -> Self {
        DeleteOptions {
            grace_period_seconds: body.get("gracePeriodSeconds").and_then(Value::as_i64),
            precondition_uid: body
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(str::to_string),
            precondition_rv: body
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string),
        }
    }
}

/// Deletes one object. Pods on a node get a grace period (deletionTimestamp
/// and deletionGracePeriodSeconds) and stay until the kubelet deletes them
/// with grace 0; objects with finalizers stay until those are removed.
/// Returns the object as deleted or as now marked for deletion, and
/// whether it is gone.
pub async fn delete(
    api: &ApiServer,
    res: &Resource,
    ns: Option<&str>,
    name: &str,
    opts: &DeleteOptions,
) -> Result<(Value, bool), ApiError> {
    let path = object_path(res, ns, name);
    let key = api.storage.key(&path);
    for _ in 0..UPDATE_RETRIES {
        let current = get(api, res, ns, name).await?;
        let obj = &current.value;
        if let Some(uid) = &opts.precondition_uid {
            if obj.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid.as_str()) {
                return Err(ApiError::Conflict {
                    subject: subject(res, name),
                    msg: format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        obj.pointer("/metadata/uid")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                    ),
                });
            }
        }
        if let Some(rv) = &opts.precondition_rv {
            if *rv != current.mod_revision.to_string() {
                return Err(ApiError::Conflict {
                    subject: subject(res, name),
                    msg: format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}", current.mod_revision),
                });
            }
        }
        let grace = graceful_period(res, obj, opts.grace_period_seconds);
        let has_finalizers = obj
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        let mut marked = obj.clone();
        let write = if grace > 0 || has_finalizers {
            let already = obj.pointer("/metadata/deletionTimestamp").is_some();
            let old_grace = obj
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64);
            if already && old_grace.is_none_or(|g| g <= grace) {
                // Deletion already under way and not shortened: nothing to do.
                return Ok((with_rv(current.value, current.mod_revision), false));
            }
            let m = meta::meta_mut(&mut marked);
            m.insert(
                "deletionTimestamp".into(),
                json!(meta::rfc3339_after(grace)),
            );
            m.insert("deletionGracePeriodSeconds".into(), json!(grace));
            Write {
                value: Some(encode(&marked)?),
                ..Default::default()
            }
        } else {
            Write {
                value: None,
                releases: releases(api, obj, None),
                ..Default::default()
            }
        };
        let removing = write.value.is_none();
        match api
            .storage
            .write(&key, Expect::ModRevision(current.mod_revision), write)
            .await?
        {
            WriteOutcome::Done { revision } => {
                if removing && res.plural == "namespaces" {
                    delete_namespace_contents(api, name).await?;
                }
                return Ok((with_rv(marked, revision), removing));
            }
            WriteOutcome::ObjectChanged(None) => {
                return Err(ApiError::not_found(res.group, res.plural, name))
            }
            WriteOutcome::ObjectChanged(Some(_)) | WriteOutcome::ClaimTaken(_) => {}
        }
    }
    Err(conflict(res, name))
}

/// The grace period a delete gets: only pods bound to a node and not yet
/// finished wait for their kubelet.
fn graceful_period(res: &Resource, obj: &Value, asked: Option<i64>) -> i64 {
    if res.kind != "Pod" {
        return 0;
    }
    let node = obj
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let phase = obj
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if node.is_empty() || matches!(phase, "Succeeded" | "Failed") {
        return 0;
    }
    asked
        .or_else(|| {
            obj.pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
        })
        .unwrap_or(30)
        .max(0)
}

/// Without a namespace controller yet, deleting a namespace deletes what
/// it holds right away (pods with grace 0, allocations released).
async fn delete_namespace_contents(api: &ApiServer, ns: &str) -> Result<(), ApiError> {
    let now = DeleteOptions {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    for res in crate::apiserver::resources::RESOURCES
        .iter()
        .filter(|r| r.namespaced)
    {
        let page = api
            .storage
            .list(&api.storage.key(&dir_path(res, Some(ns))), None, 0, 0)
            .await?;
        for s in page.items {
            let name = meta::name_of(&s.value).to_string();
            // Strip finalizers: nothing would ever remove them.
            let key = s.key.clone();
            let write = Write {
                value: None,
                releases: releases(api, &s.value, None),
                ..Default::default()
            };
            match api
                .storage
                .write(&key, Expect::ModRevision(s.mod_revision), write)
                .await?
            {
                WriteOutcome::Done { .. } => {}
                _ => match Box::pin(delete(api, res, Some(ns), &name, &now)).await {
                    Ok(_) | Err(ApiError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                },
            }
        }
    }
    Ok(())
}

pub async fn delete_collection(
    api: &ApiServer,
    res: &Resource,
    ns: Option<&str>,
    list_opts: &ListOptions,
    opts: &DeleteOptions,
) -> Result<Value, ApiError> {
    let all = ListOptions {
        limit: 0,
        continue_token: None,
        ..list_opts.clone()
    };
    let listed = list(api, res, ns, &all).await?;
    let mut deleted = Vec::new();
    for item in listed["items"].as_array().into_iter().flatten() {
        let name = meta::name_of(item);
        let item_ns = item.pointer("/metadata/namespace").and_then(Value::as_str);
        match delete(api, res, item_ns.or(ns), name, opts).await {
            Ok((v, _)) => deleted.push(v),
            Err(ApiError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(json!({
        "kind": res.list_kind(),
        "apiVersion": res.api_version(),
        "metadata": {"resourceVersion": listed["metadata"]["resourceVersion"]},
        "items": deleted,
    }))
}
