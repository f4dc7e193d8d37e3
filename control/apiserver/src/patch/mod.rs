//! PATCH bodies by media type: JSON merge patch (RFC 7386), JSON patch
//! (RFC 6902) and Kubernetes' strategic merge patch. Pure functions from
//! (current object, patch) to the patched object; no storage, no checks of
//! what the result means.

pub mod strategic;

use serde_json::Value;

use super::status::ApiError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    Merge,
    Json,
    Strategic,
}

pub const ACCEPTED: &str = "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json";

impl PatchKind {
    pub fn from_content_type(ct: &str) -> Result<Self, ApiError> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/json-patch+json" => Ok(PatchKind::Json),
            "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
            _ => Err(ApiError::UnsupportedMediaType(ACCEPTED.into())),
        }
    }
}

pub fn apply(kind: PatchKind, current: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let bad = |e: String| ApiError::BadRequest(e);
    match kind {
        PatchKind::Merge => {
            let p: Value = serde_json::from_slice(body)
                .map_err(|e| bad(format!("error decoding patch: {e}")))?;
            if !p.is_object() {
                return Err(bad("a merge patch must be a JSON object".into()));
            }
            let mut out = current.clone();
            json_patch::merge(&mut out, &p);
            Ok(out)
        }
        PatchKind::Json => {
            let p: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| bad(format!("error decoding patch: {e}")))?;
            let mut out = current.clone();
            json_patch::patch(&mut out, &p).map_err(|e| {
                ApiError::invalid(
                    "",
                    "Patch",
                    "",
                    vec![super::status::Cause {
                        reason: "FieldValueInvalid",
                        field: String::new(),
                        message: format!(
                            "the server rejected our request due to an error in our request: {e}"
                        ),
                    }],
                )
            })?;
            Ok(out)
        }
        PatchKind::Strategic => {
            let p: Value = serde_json::from_slice(body)
                .map_err(|e| bad(format!("error decoding patch: {e}")))?;
            if !p.is_object() {
                return Err(bad("a strategic merge patch must be a JSON object".into()));
            }
            strategic::merge(current, &p).map_err(bad)
        }
    }
}

/// The resourceVersion a patch pins, if it names one.
pub fn precondition(kind: PatchKind, body: &[u8]) -> Option<String> {
    if kind == PatchKind::Json {
        return None;
    }
    let p: Value = serde_json::from_slice(body).ok()?;
    p.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_and_json_patch() {
        let cur = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
        let m = apply(
            PatchKind::Merge,
            &cur,
            br#"{"metadata":{"labels":{"a":null,"c":"3"}}}"#,
        )
        .unwrap();
        assert_eq!(m["metadata"]["labels"], json!({"b": "2", "c": "3"}));
        let j = apply(
            PatchKind::Json,
            &cur,
            br#"[{"op":"replace","path":"/metadata/labels/a","value":"9"}]"#,
        )
        .unwrap();
        assert_eq!(j["metadata"]["labels"]["a"], "9");
        let e = apply(
            PatchKind::Json,
            &cur,
            br#"[{"op":"test","path":"/metadata/labels/a","value":"x"}]"#,
        );
        assert!(matches!(e, Err(ApiError::Invalid { .. })));
        assert!(matches!(
            apply(PatchKind::Merge, &cur, b"{"),
            Err(ApiError::BadRequest(_))
        ));
        assert!(PatchKind::from_content_type("application/apply-patch+yaml").is_err());
    }
}
