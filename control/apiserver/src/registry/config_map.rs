//! The ConfigMap strategy: its `data` and `binaryData` keys must be valid
//! config keys. Values are free-form.

use serde_json::Value;

use super::strategy::Strategy;
use super::validation;
use crate::status::Cause;

pub struct ConfigMapStrategy;

impl Strategy for ConfigMapStrategy {
    fn validate(&self, obj: &Value, out: &mut Vec<Cause>) {
        validation::config_keys(obj, out);
    }
}
