//! The delete verb on one object: namespaces follow their lifecycle, every
//! other kind the ordinary delete. Dispatch only.

use serde_json::Value;

use super::namespace::delete_namespace;
use super::object::delete_object;
use super::options::DeleteOptions;
use crate::resources::Resource;
use crate::status::ApiError;
use crate::ApiServer;

/// Deletes one object. Pods on a node get a grace period (deletionTimestamp
/// and deletionGracePeriodSeconds) and stay until the kubelet deletes them
/// with grace 0; objects with finalizers stay until those are removed.
/// Returns the object as deleted or as now marked for deletion, and
/// whether it is gone.
pub async fn delete(
    api: &ApiServer,
    res: &Resource,
    ns: Option<&str>,
    name: &str,
    opts: &DeleteOptions,
) -> Result<(Value, bool), ApiError> {
    if res.plural == "namespaces" {
        return delete_namespace(api, res, name, opts).await;
    }
    delete_object(api, res, ns, name, opts).await
}
