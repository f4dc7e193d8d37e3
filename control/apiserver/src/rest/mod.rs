//! The verbs on stored objects: get, list, create, update (guaranteed,
//! optimistic), delete (graceful for pods, finalizers), deletecollection,
//! binding. Everything that writes goes through one etcd transaction per
//! object. No HTTP here: handlers translate requests into these calls and
//! results into responses.

mod bind;
mod create;
mod delete;
mod list;
mod update;

pub use bind::bind;
pub use create::{create, create_with};
pub use delete::{
    delete, delete_collection, finalizers_after_delete, DeleteOptions, Propagation, FOREGROUND,
    ORPHAN,
};
pub use list::{list, matches, ListOptions};
pub use update::{update, update_with, Change, ComputeFn};

use serde_json::{json, Value};

use super::registry::meta;
use super::storage::{StorageError, Stored};
use super::ApiServer;
use crate::resources::Resource;
use crate::status::{ApiError, Subject};

/// How many times a read-modify-write retries after losing a race.
pub(crate) const UPDATE_RETRIES: usize = 16;

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Compacted(_) => ApiError::Gone(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".into(),
            ),
            StorageError::Etcd { .. } => ApiError::Unavailable(e.to_string()),
            StorageError::Decode { .. } => ApiError::Internal(e.to_string()),
        }
    }
}

pub fn object_path(res: &Resource, ns: Option<&str>, name: &str) -> String {
    match (res.namespaced, ns) {
        (true, Some(ns)) => format!("{}/{}/{}", res.plural, ns, name),
        _ => format!("{}/{}", res.plural, name),
    }
}

pub fn dir_path(res: &Resource, ns: Option<&str>) -> String {
    match (res.namespaced, ns) {
        (true, Some(ns)) => format!("{}/{}/", res.plural, ns),
        _ => format!("{}/", res.plural),
    }
}

/// The object as clients see it: the stored JSON plus its revision.
pub fn with_rv(mut value: Value, rev: i64) -> Value {
    meta::meta_mut(&mut value).insert("resourceVersion".into(), json!(rev.to_string()));
    value
}

pub(crate) fn subject(res: &Resource, name: &str) -> Subject {
    Subject {
        group: res.group.into(),
        kind: res.plural.into(),
        name: name.into(),
    }
}

pub(crate) fn conflict(res: &Resource, name: &str) -> ApiError {
    ApiError::Conflict {
        subject: subject(res, name),
        msg: "the object has been modified; please apply your changes to the latest version and try again".into(),
    }
}

pub(crate) fn encode(v: &Value) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(v).map_err(|e| ApiError::Internal(format!("encode: {e}")))
}

pub async fn get(
    api: &ApiServer,
    res: &Resource,
    ns: Option<&str>,
    name: &str,
) -> Result<Stored, ApiError> {
    let key = api.storage.key(&object_path(res, ns, name));
    api.storage
        .get(&key)
        .await?
        .ok_or_else(|| ApiError::not_found(res.group, res.plural, name))
}

/// Field paths each resource can be selected by, beyond metadata.name and
/// metadata.namespace.
pub fn selectable_fields(res: &Resource) -> Vec<&'static str> {
    let mut f = vec!["metadata.name", "metadata.namespace"];
    match res.plural {
        "pods" => f.extend([
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "status.phase",
            "status.podIP",
        ]),
        "events" => f.extend([
            "involvedObject.kind",
            "involvedObject.name",
            "involvedObject.namespace",
            "involvedObject.uid",
            "reason",
            "type",
        ]),
        "secrets" => f.push("type"),
        "namespaces" => f.push("status.phase"),
        "nodes" => f.push("spec.unschedulable"),
        "replicationcontrollers" | "replicasets" => f.push("status.replicas"),
        _ => {}
    }
    f
}
