//! Kubernetes' namespace lifecycle on delete: the namespace goes
//! Terminating, its content is deleted through the ordinary delete, and it
//! goes once empty and finalized (else the namespace controller finishes).

use serde_json::{json, Value};

use super::finalizers::finalizers_of;
use super::object::delete_object;
use super::options::{check_preconditions, DeleteOptions};
use super::write::write_guarded;
use crate::registry::meta;
use crate::resources::Resource;
use crate::rest::stored::{conflict, dir_path, encode, get, object_path, with_rv, UPDATE_RETRIES};
use crate::status::ApiError;
use crate::storage::Write;
use crate::ApiServer;

/// The finalizer that keeps a Terminating namespace until its content
/// is gone (in `spec.finalizers`, as Kubernetes keeps it).
pub const NAMESPACE_FINALIZER: &str = "kubernetes";

/// Kubernetes' namespace lifecycle: a delete marks the namespace
/// Terminating (deletionTimestamp, `status.phase`, the `kubernetes`
/// finalizer), after which nothing new may be created in it. Its content is
/// deleted right here, as the namespace controller would (pods bound to a
/// node get their grace period, objects with finalizers stay); when nothing
/// is left the namespace goes with this same request, else the namespace
/// controller finishes once the rest is gone.
pub(super) async fn delete_namespace(
    api: &ApiServer,
    res: &Resource,
    name: &str,
    opts: &DeleteOptions,
) -> Result<(Value, bool), ApiError> {
    let marked = mark_terminating(api, res, name, opts).await?;
    if delete_namespace_contents(api, name).await? > 0 {
        return Ok((marked, false));
    }
    match finalize_namespace(api, res, name).await {
        // Finished meanwhile by a concurrent delete (the namespace
        // controller retries Terminating namespaces): gone, as asked.
        Err(ApiError::NotFound(_)) => Ok((marked, true)),
        r => r,
    }
}

/// The Terminating form of a namespace; None when it already is.
pub fn terminating(ns: &Value) -> Option<Value> {
    if ns.pointer("/metadata/deletionTimestamp").is_some() {
        return None;
    }
    let mut t = ns.clone();
    let m = meta::meta_mut(&mut t);
    m.insert("deletionTimestamp".into(), json!(meta::now()));
    m.insert("deletionGracePeriodSeconds".into(), json!(0));
    if !t.get("spec").is_some_and(Value::is_object) {
        t["spec"] = json!({});
    }
    let mut f: Vec<Value> = t["spec"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !f.iter().any(|x| x == NAMESPACE_FINALIZER) {
        f.push(json!(NAMESPACE_FINALIZER));
    }
    t["spec"]["finalizers"] = json!(f);
    if !t.get("status").is_some_and(Value::is_object) {
        t["status"] = json!({});
    }
    t["status"]["phase"] = json!("Terminating");
    Some(t)
}

async fn mark_terminating(
    api: &ApiServer,
    res: &Resource,
    name: &str,
    opts: &DeleteOptions,
) -> Result<Value, ApiError> {
    let key = api.storage.key(&object_path(res, None, name));
    for _ in 0..UPDATE_RETRIES {
        let current = get(api, res, None, name).await?;
        check_preconditions(res, name, opts, &current)?;
        let Some(marked) = terminating(&current.value) else {
            return Ok(with_rv(current.value, current.mod_revision));
        };
        let write = Write {
            value: Some(encode(&marked)?),
            ..Default::default()
        };
        if let Some(revision) =
            write_guarded(api, &key, current.mod_revision, write, res, name).await?
        {
            return Ok(with_rv(marked, revision));
        }
    }
    Err(conflict(res, name))
}

/// Removes the `kubernetes` finalizer (what Kubernetes' `finalize`
/// subresource does; an ordinary update keeps `spec.finalizers`), and the
/// namespace with it when no other finalizer is left.
async fn finalize_namespace(
    api: &ApiServer,
    res: &Resource,
    name: &str,
) -> Result<(Value, bool), ApiError> {
    let key = api.storage.key(&object_path(res, None, name));
    for _ in 0..UPDATE_RETRIES {
        let current = get(api, res, None, name).await?;
        let mut next = current.value.clone();
        if let Some(list) = next
            .pointer_mut("/spec/finalizers")
            .and_then(Value::as_array_mut)
        {
            list.retain(|x| x != NAMESPACE_FINALIZER);
        }
        let gone = namespace_finalized(&next) && finalizers_of(&next).is_empty();
        if !gone && next == current.value {
            return Ok((with_rv(next, current.mod_revision), false));
        }
        let write = Write {
            value: if gone { None } else { Some(encode(&next)?) },
            ..Default::default()
        };
        if let Some(revision) =
            write_guarded(api, &key, current.mod_revision, write, res, name).await?
        {
            if gone {
                tracing::info!(namespace = %name, "namespace empty and finalized: removed");
            }
            return Ok((with_rv(next, revision), gone));
        }
    }
    Err(conflict(res, name))
}

/// Whether nothing in `spec.finalizers` holds a namespace any more.
pub fn namespace_finalized(ns: &Value) -> bool {
    ns.pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .is_none_or(|f| f.is_empty())
}

/// Deletes what a namespace holds through the ordinary delete; returns
/// how many objects are still there (graceful pods, finalizers).
async fn delete_namespace_contents(api: &ApiServer, ns: &str) -> Result<usize, ApiError> {
    let opts = DeleteOptions::default();
    let mut left = 0;
    for res in crate::resources::RESOURCES.iter().filter(|r| r.namespaced) {
        let page = api
            .storage
            .list(&api.storage.key(&dir_path(res, Some(ns))), None, 0, 0)
            .await?;
        for s in page.items {
            let name = meta::name_of(&s.value).to_string();
            // Namespaced kinds are never namespaces: the ordinary delete.
            match delete_object(api, res, Some(ns), &name, &opts).await {
                Ok((_, true)) | Err(ApiError::NotFound(_)) => {}
                Ok((_, false)) => left += 1,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(left)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_goes_terminating_once() {
        let ns = json!({"metadata": {"name": "a"}, "spec": {"finalizers": ["other"]}, "status": {"phase": "Active"}});
        let t = terminating(&ns).unwrap();
        assert_eq!(t["status"]["phase"], "Terminating");
        assert_eq!(t["spec"]["finalizers"], json!(["other", "kubernetes"]));
        assert!(t["metadata"]["deletionTimestamp"].is_string());
        assert!(terminating(&t).is_none());
        assert!(!namespace_finalized(&t));
        assert!(namespace_finalized(&json!({"spec": {"finalizers": []}})));
    }
}
