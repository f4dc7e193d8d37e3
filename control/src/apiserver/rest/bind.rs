//! `POST pods/<name>/binding`: the scheduler's one-time assignment of a
//! pod to a node (spec.nodeName and the PodScheduled condition).

use serde_json::{json, Value};

use super::{conflict, encode, get, object_path, subject, UPDATE_RETRIES};
use crate::apiserver::registry::meta;
use crate::apiserver::resources::Resource;
use crate::apiserver::status::ApiError;
use crate::apiserver::storage::{Expect, Write, WriteOutcome};
use crate::apiserver::ApiServer;

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
            vec![crate::apiserver::status::Cause::required("target.name")],
        ));
    }
    let pod_name = name.to_string();
    let path = object_path(res, ns, name);
    let key = api.storage.key(&path);
    for _ in 0..UPDATE_RETRIES {
        let current = get(api, res, ns, name).await?;
        let mut pod = current.value.clone();
        if pod.pointer("/metadata/deletionTimestamp").is_some() {
            return Err(ApiError::Conflict {
                subject: subject(res, &pod_name),
                msg: "pod is being deleted, cannot be assigned to a host".into(),
            });
        }
        match pod.pointer("/spec/nodeName").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => {
                return Err(ApiError::Conflict {
                    subject: subject(res, &pod_name),
                    msg: format!("pod {pod_name} is already assigned to node \"{n}\""),
                })
            }
            _ => {}
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
        if let WriteOutcome::Done { .. } = api
            .storage
            .write(&key, Expect::ModRevision(current.mod_revision), write)
            .await?
        {
            return Ok(crate::apiserver::status::success_status(
                json!({"name": pod_name, "kind": "pods"}),
            ));
        }
    }
    Err(conflict(res, name))
}
