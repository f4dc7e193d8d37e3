//! What every verb shares about a stored object: its etcd path, the read,
//! the resourceVersion clients see, encoding, and the conflict answers.
//! Nothing here writes.

use serde_json::{json, Value};

use crate::registry::meta;
use crate::resources::Resource;
use crate::status::{ApiError, Subject};
use crate::storage::{StorageError, Stored};
use crate::ApiServer;

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
