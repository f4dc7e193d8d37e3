//! The Service strategy: spec defaults and validation. Cluster IPs and
//! node ports are allocated by the REST layer (`alloc` plans, storage
//! commits), not here.

use serde_json::Value;

use super::spec::{default_spec, validate_spec};
use crate::registry::strategy::Strategy;
use crate::status::Cause;

pub struct ServiceStrategy;

impl Strategy for ServiceStrategy {
    fn canonicalize(&self, obj: &mut Value) {
        if let Some(spec) = obj.get_mut("spec") {
            default_spec(spec);
        }
    }

    fn validate(&self, obj: &Value, out: &mut Vec<Cause>) {
        validate_spec(obj.get("spec"), out);
    }
}
