//! The node authorizer's pod → secret/configmap/serviceaccount relationship,
//! looked up per request: the pods bound to the calling node in the object's namespace
//! (one etcd range read of that namespace's pods), and whether any of them
//! references the object. Read fresh rather than cached so a pod bound a
//! moment ago already grants its kubelet the secret it needs, and a deleted
//! pod stops granting at once.

use serde_json::Value;

use super::authorize::attributes;
use super::target::ResourceTarget;
use crate::auth::pod_refs;
use crate::auth::{Attributes, User, Verb};
use crate::resources;
use crate::rest::{self, ListOptions};
use crate::selectors::FieldSelector;
use crate::status::ApiError;
use crate::ApiServer;

/// Whether `name` is referenced by a pod bound to the caller's node; false
/// (without reading) when the authorizer does not ask for it.
pub async fn for_request(
    api: &ApiServer,
    user: Option<&User>,
    verb: Verb,
    t: &ResourceTarget,
    name: Option<&str>,
) -> Result<bool, ApiError> {
    let Some(user) = user else {
        return Ok(false);
    };
    for_attributes(api, user, &attributes(verb, t, name, None, false)).await
}

/// The same question for any authorization attributes (a request's, or a
/// SelfSubjectAccessReview's), so a review is answered as the request would be.
pub(crate) async fn for_attributes(
    api: &ApiServer,
    user: &User,
    a: &Attributes<'_>,
) -> Result<bool, ApiError> {
    if !api.authorizer.uses_node_relation(user, a) {
        return Ok(false);
    }
    let (Some(node), Some(ns), Some(name)) = (user.node_name(), a.namespace, a.name) else {
        return Ok(false);
    };
    referenced_by_node(api, node, ns, a.resource, name).await
}

async fn referenced_by_node(
    api: &ApiServer,
    node: &str,
    ns: &str,
    resource: &str,
    name: &str,
) -> Result<bool, ApiError> {
    let Some(pods) = resources::find("", "v1", "pods") else {
        return Ok(false);
    };
    let opts = ListOptions {
        field: FieldSelector::default().and_equals("spec.nodeName", node),
        ..Default::default()
    };
    let list = rest::list(api, pods, Some(ns), &opts).await?;
    Ok(list
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|p| pod_refs::referenced(p).names(resource, name)))
}
