//! A request body against its Kubernetes type: decoded into the
//! `k8s-openapi` struct and back (wrong shapes are 400), and the fields that
//! type does not know (`fieldValidation=Strict`). No kind-specific rules.

use serde_json::Value;

use crate::resources::Resource;
use crate::status::ApiError;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;
    use serde_json::json;

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
}
