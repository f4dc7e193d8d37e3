//! The Namespace strategy: a new namespace starts `Active`. Termination
//! (the `Terminating` phase, emptying it) is the delete path's and the
//! namespace controller's.

use serde_json::{json, Value};

use super::strategy::Strategy;

pub struct NamespaceStrategy;

impl Strategy for NamespaceStrategy {
    fn prepare_for_create(&self, obj: &mut Value) {
        obj["status"] = json!({"phase": "Active"});
    }
}
