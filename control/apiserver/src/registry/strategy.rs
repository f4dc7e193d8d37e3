//! The per-kind hooks of a create or update, after kube-apiserver's
//! RESTCreateStrategy/RESTUpdateStrategy: each kind says what it starts
//! with, how it is defaulted and what makes it invalid. The order they run
//! in and the rules every kind shares are `prepare`; storage is the REST
//! layer's.

use serde_json::Value;

use crate::status::Cause;

/// One kind's rules. Every hook is pure over the JSON object, and each
/// defaults to doing nothing.
pub trait Strategy: Sync {
    /// What a new object starts with (e.g. a pod's initial status); runs
    /// after the status a client sent was reset, before `canonicalize`.
    fn prepare_for_create(&self, _obj: &mut Value) {}

    /// What an update of the main resource changes from the stored object
    /// (e.g. a DaemonSet's template generation); runs after `canonicalize`,
    /// so both objects are defaulted.
    fn prepare_for_update(&self, _old: &Value, _new: &mut Value) {}

    /// Defaults and canonical form, on create and on every update of the
    /// main resource (kube-apiserver defaults at decoding and canonicalizes
    /// after; one step here).
    fn canonicalize(&self, _obj: &mut Value) {}

    /// The kind's own validation of the whole object, after the metadata's.
    fn validate(&self, _obj: &Value, _out: &mut Vec<Cause>) {}

    /// What only an update can get wrong (immutable fields), after
    /// `validate`.
    fn validate_update(&self, _old: &Value, _new: &Value, _out: &mut Vec<Cause>) {}
}

/// The strategy of a kind with no rules of its own.
pub struct Generic;

impl Strategy for Generic {}
