//! Per-kind strategy: what a create or update of each resource defaults,
//! validates and resets. Pure functions over JSON objects; storage and
//! allocation commits are the REST layer's.

pub mod meta;
pub mod pod;
pub mod service;
pub mod validation;
pub mod workload;

use serde_json::{json, Value};

use crate::resources::{Resource, Sub};
use crate::status::{ApiError, Cause};

/// Decodes through the Kubernetes type: a wrong shape is 400, as the real
/// server's decoder answers.
pub fn normalize(res: &Resource, obj: Value) -> Result<Value, ApiError> {
    (res.normalize)(obj).map_err(|e| {
        ApiError::BadRequest(format!(
            "error decoding {} from the request body: {e}",
            res.kind
        ))
    })
}

/// Fields of `original` the Kubernetes type does not know (`normalized` is
/// its decoded-and-encoded form), as dotted paths.
pub fn unknown_fields(original: &Value, normalized: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk_unknown(original, normalized, "", &mut out);
    out
}

fn walk_unknown(o: &Value, n: &Value, path: &str, out: &mut Vec<String>) {
    match (o, n) {
        (Value::Object(om), Value::Object(nm)) => {
            for (k, ov) in om {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match nm.get(k) {
                    Some(nv) => walk_unknown(ov, nv, &p, out),
                    // Nulls and empty values are dropped by encoding, not unknown.
                    None if ov.is_null() => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(oa), Value::Array(na)) => {
            for (i, (ov, nv)) in oa.iter().zip(na).enumerate() {
                walk_unknown(ov, nv, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// `fieldValidation=Strict`: unknown fields are a 400, as Kubernetes answers.
pub fn strict(res: &Resource, original: &Value) -> Result<(), ApiError> {
    let normalized = normalize(res, original.clone())?;
    let unknown = unknown_fields(original, &normalized);
    if unknown.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    Err(ApiError::BadRequest(format!(
        "strict decoding error: {}",
        list.join(", ")
    )))
}

fn invalid(res: &Resource, obj: &Value, causes: Vec<Cause>) -> Result<(), ApiError> {
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            res.group,
            res.kind,
            meta::name_of(obj),
            causes,
        ))
    }
}

fn default_kind(res: &Resource, obj: &mut Value) {
    match res.kind {
        "Pod" => {
            if let Some(spec) = obj.get_mut("spec") {
                pod::default_spec(spec);
            }
        }
        "Service" => {
            if let Some(spec) = obj.get_mut("spec") {
                service::default_spec(spec);
            }
        }
        "Deployment" | "ReplicaSet" | "DaemonSet" | "ReplicationController" => {
            if let Some(spec) = obj.get_mut("spec") {
                workload::default_spec(res.kind, spec);
            }
        }
        "Secret" => merge_string_data(obj),
        _ => {}
    }
}

/// `stringData` is write-only: folded into `data` as base64.
fn merge_string_data(obj: &mut Value) {
    use base64::Engine;
    let Some(Value::Object(sd)) = obj.as_object_mut().and_then(|o| o.remove("stringData")) else {
        return;
    };
    if !obj.get("data").is_some_and(Value::is_object) {
        obj["data"] = json!({});
    }
    for (k, v) in sd {
        let s = v.as_str().unwrap_or_default();
        obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(s));
    }
    if obj.get("type").is_none() {
        obj["type"] = json!("Opaque");
    }
}

fn validate_kind(res: &Resource, obj: &Value, out: &mut Vec<Cause>) {
    match res.kind {
        "Pod" => pod::validate_spec("spec", obj.get("spec"), out),
        "Service" => service::validate_spec(obj.get("spec"), out),
        "Deployment" | "ReplicaSet" | "DaemonSet" | "ReplicationController" => {
            workload::validate_spec(res.kind, obj.get("spec"), out)
        }
        "ConfigMap" | "Secret" => {
            for field in ["data", "binaryData"] {
                for k in obj
                    .get(field)
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| k)
                {
                    let ok = !k.is_empty()
                        && k.len() <= 253
                        && k.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
                    if !ok {
                        out.push(Cause::invalid(format!("{field}[{k}]"), k, "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"));
                    }
                }
            }
        }
        _ => {}
    }
}

/// Defaults and validates a new object whose metadata `meta::prepare_create`
/// already set.
pub fn prepare_create(res: &Resource, obj: &mut Value) -> Result<(), ApiError> {
    if res.reset_status_on_create {
        if let Some(o) = obj.as_object_mut() {
            o.remove("status");
        }
    }
    match res.kind {
        "Pod" => obj["status"] = pod::initial_status(obj.get("spec")),
        "Namespace" => obj["status"] = json!({"phase": "Active"}),
        _ => {}
    }
    default_kind(res, obj);
    let mut causes = Vec::new();
    meta::validate(res, obj, &mut causes);
    validate_kind(res, obj, &mut causes);
    invalid(res, obj, causes)
}

/// Defaults and validates an update of the main resource (`sub` = None) or
/// of its status; `new` already carries the server-owned metadata.
pub fn prepare_update(
    res: &Resource,
    old: &Value,
    new: &mut Value,
    sub: Option<Sub>,
) -> Result<(), ApiError> {
    match sub {
        Some(Sub::Status) => {
            // A status write changes the status and nothing else.
            let status = new.get("status").cloned();
            let mut merged = old.clone();
            match status {
                Some(s) => merged["status"] = s,
                None => {
                    if let Some(o) = merged.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
            *new = merged;
            return Ok(());
        }
        Some(_) => return Ok(()),
        None => {}
    }
    if res.has(Sub::Status) {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(o) = new.as_object_mut() {
                    o.remove("status");
                }
            }
        }
    }
    default_kind(res, new);
    let mut causes = Vec::new();
    meta::validate(res, new, &mut causes);
    validate_kind(res, new, &mut causes);
    if res.kind == "Pod" {
        pod::validate_update(old, new, &mut causes);
    }
    if let Some(sel) = old.pointer("/spec/selector") {
        if res.group == "apps" && new.pointer("/spec/selector") != Some(sel) {
            causes.push(Cause::invalid("spec.selector", "", "field is immutable"));
        }
    }
    invalid(res, new, causes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;

    #[test]
    fn status_update_keeps_everything_but_status() {
        let pods = find("", "v1", "pods").unwrap();
        let old = json!({"metadata": {"name": "p", "labels": {"a": "1"}}, "spec": {"x": 1}, "status": {"phase": "Pending"}});
        let mut new = json!({"metadata": {"name": "p", "labels": {"a": "2"}}, "spec": {"x": 2}, "status": {"phase": "Running"}});
        prepare_update(pods, &old, &mut new, Some(Sub::Status)).unwrap();
        assert_eq!(new["status"]["phase"], "Running");
        assert_eq!(new["spec"]["x"], 1);
        assert_eq!(new["metadata"]["labels"]["a"], "1");
    }

    #[test]
    fn strict_names_unknown_fields() {
        let pods = find("", "v1", "pods").unwrap();
        let p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "bogus": 1},
                       "spec": {"containers": [{"name": "c", "image": "i", "imagee": "x"}]}});
        let e = strict(pods, &p).unwrap_err().to_string();
        assert!(
            e.contains("unknown field \"metadata.bogus\"")
                && e.contains("spec.containers[0].imagee"),
            "{e}"
        );
        let ok =
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": null}});
        assert!(strict(pods, &ok).is_ok());
    }

    #[test]
    fn secret_string_data_becomes_data() {
        let secrets = find("", "v1", "secrets").unwrap();
        let mut s = json!({"metadata": {"name": "s"}, "stringData": {"k": "v"}});
        prepare_create(secrets, &mut s).unwrap();
        assert_eq!(s["data"]["k"], "dg==");
        assert!(s.get("stringData").is_none());
    }
}
