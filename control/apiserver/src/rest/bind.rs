//! `POST pods/<name>/binding`: the scheduler's one-time assignment of a
//! pod to a node (spec.nodeName and the PodScheduled condition).

use serde_json::{json, Value};

use super::stored::{conflict, encode, get, object_path, subject, UPDATE_RETRIES};
use crate::registry::meta;
use crate::resources::Resource;
use crate::status::ApiError;
use crate::storage::{Expect, Stored, Write, WriteOutcome};
use crate::ApiServer;

/// `POST pods/<name>/binding`: sets spec.nodeName once.
pub async fn bind(
    api: &ApiServer,
    res: &Resource,
    ns: Option<&str>,
    name: &str,
    binding: &Value,
) -> Result<Value, ApiError> {
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if node.is_empty() {
        return Err(ApiError::invalid(
            "",
            "Binding",
            name,
            vec![crate::status::Cause::required("target.name")],
        ));
    }
    let pod_name = name.to_string();
    let path = object_path(res, ns, name);
    let key = api.storage.key(&path);
    // Start from this server's last sight of the pod (usually its create a
    // moment ago); the compare on the mod revision catches a stale guess,
    // and a refusal is only ever given on a pod read from etcd.
    let mut known: Option<Stored> = api.storage.guess(&key);
    let mut verified = false;
    for _ in 0..UPDATE_RETRIES {
        let current = match known.take() {
            Some(c) => c,
            None => {
                verified = true;
                get(api, res, ns, name).await?
            }
        };
        let mut pod = current.value.clone();
        let refusal = if pod.pointer("/metadata/deletionTimestamp").is_some() {
            Some("pod is being deleted, cannot be assigned to a host".to_string())
        } else {
            match pod.pointer("/spec/nodeName").and_then(Value::as_str) {
                Some(n) if !n.is_empty() => Some(format!(
                    "pod {pod_name} is already assigned to node \"{n}\""
                )),
                _ => None,
            }
        };
        if let Some(msg) = refusal {
            if !verified {
                continue;
            }
            return Err(ApiError::Conflict {
                subject: subject(res, &pod_name),
                msg,
            });
        }
        pod["spec"]["nodeName"] = json!(node);
        let cond = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": meta::now()});
        if !pod.get("status").is_some_and(Value::is_object) {
            pod["status"] = json!({});
        }
        let mut conds: Vec<Value> = pod["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        conds.retain(|c| c["type"] != "PodScheduled");
        conds.push(cond);
        pod["status"]["conditions"] = json!(conds);
        let write = Write {
            value: Some(encode(&pod)?),
            ..Default::default()
        };
        match api
            .storage
            .write(&key, Expect::ModRevision(current.mod_revision), write)
            .await?
        {
            WriteOutcome::Done { .. } => {
                return Ok(crate::status::success_status(
                    json!({"name": pod_name, "kind": "pods"}),
                ))
            }
            WriteOutcome::ObjectChanged(None) => {
                return Err(ApiError::not_found(res.group, res.plural, name))
            }
            // What etcd holds now, read in the same transaction.
            WriteOutcome::ObjectChanged(Some(now)) => {
                verified = true;
                known = Some(now);
            }
            WriteOutcome::ClaimTaken(_) | WriteOutcome::GuardChanged(_) => {}
        }
    }
    Err(conflict(res, name))
}
