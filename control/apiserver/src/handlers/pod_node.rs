//! The node an existing pod is bound to, for the authorizer's node rules
//! (a node may act only on pods bound to it). Read only when the decision
//! can depend on it: for most callers it cannot, and the read doubled
//! every pod request.

use serde_json::Value;

use crate::auth::{Attributes, User};
use crate::{resources, rest, ApiServer};

/// `spec.nodeName` of the pod `a` names, when `a` is about a named core pod
/// and the authorizer's answer for `user` depends on it; None otherwise or
/// when the pod cannot be read (the authorizer then decides without it).
pub(crate) async fn for_attributes(
    api: &ApiServer,
    user: &User,
    a: &Attributes<'_>,
) -> Option<String> {
    let name = a.name?;
    let is_pod = a.group.is_empty() && a.resource == "pods";
    if !is_pod || !api.authorizer.uses_pod_node(user, a) {
        return None;
    }
    let pods = resources::find("", "v1", "pods")?;
    let s = rest::get(api, pods, a.namespace, name).await.ok()?;
    s.value
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .map(str::to_string)
}
