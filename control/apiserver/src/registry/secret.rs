//! The Secret strategy: write-only `stringData` folded into `data`, a
//! default `type`, and valid data keys. Never logs or returns values.

use serde_json::{json, Value};

use super::strategy::Strategy;
use super::validation;
use crate::status::Cause;

pub struct SecretStrategy;

impl Strategy for SecretStrategy {
    fn canonicalize(&self, obj: &mut Value) {
        merge_string_data(obj);
    }

    fn validate(&self, obj: &Value, out: &mut Vec<Cause>) {
        validation::config_keys(obj, out);
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
