//! Escalation prevention on writes of RBAC objects, where Kubernetes' RBAC
//! storage puts it: after authorization, before the object is stored, on
//! the object as it will be written (for a patch, the patched object).
//! Other kinds pass untouched. The rules are `auth::rbac::escalation`'s.

use std::sync::Arc;

use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef};
use serde_json::Value;

use crate::auth::rbac::escalation::{self, GROUP};
use crate::auth::User;
use crate::resources::Resource;
use crate::status::ApiError;
use crate::ApiServer;

/// The check for one write: `(old, new)` → allowed or 403.
pub type Guard = Arc<dyn Fn(Option<&Value>, &Value) -> Result<(), ApiError> + Send + Sync>;

/// The guard for writes of `res` by `user` in `ns`, when `res` is an RBAC
/// kind and the user is not a superuser.
pub fn guard(
    api: &Arc<ApiServer>,
    user: Option<&User>,
    res: &'static Resource,
    ns: Option<&str>,
) -> Option<Guard> {
    if res.group != GROUP {
        return None;
    }
    let user = user?.clone();
    if escalation::escalation_allowed(&user) {
        return None;
    }
    let api = api.clone();
    let ns = ns.unwrap_or_default().to_string();
    Some(Arc::new(move |old, new| {
        check(&api, &user, res, &ns, old, new)
    }))
}

fn forbidden(res: &Resource, name: &str, why: &str) -> ApiError {
    ApiError::Forbidden(format!(
        "{}.{} \"{name}\" is forbidden: {why}",
        res.plural, res.group
    ))
}

fn check(
    api: &ApiServer,
    user: &User,
    res: &Resource,
    ns: &str,
    old: Option<&Value>,
    new: &Value,
) -> Result<(), ApiError> {
    if old.is_some_and(|o| escalation::only_gc_fields_change(o, new)) {
        return Ok(());
    }
    let name = crate::registry::meta::name_of(new);
    let z = &*api.authorizer;
    match res.kind {
        "Role" | "ClusterRole" => {
            if escalation::role_escalation_authorized(z, user, res.plural, ns, name) {
                return Ok(());
            }
            // A body that does not decode is refused by validation later.
            let Ok(rules) = serde_json::from_value::<Vec<PolicyRule>>(
                new.get("rules")
                    .cloned()
                    .unwrap_or(Value::Array(Vec::new())),
            ) else {
                return Ok(());
            };
            escalation::confirm_no_escalation(&api.rbac, user, ns, &rules)
                .map_err(|why| forbidden(res, name, &why))?;
            let aggregates = |v: Option<&Value>| {
                v.and_then(|v| v.get("aggregationRule"))
                    .is_some_and(|a| !a.is_null())
            };
            if res.kind == "ClusterRole" && (aggregates(Some(new)) || aggregates(old)) {
                let everything: Vec<PolicyRule> = vec![
                    PolicyRule {
                        verbs: vec!["*".into()],
                        api_groups: Some(vec!["*".into()]),
                        resources: Some(vec!["*".into()]),
                        ..Default::default()
                    },
                    PolicyRule {
                        verbs: vec!["*".into()],
                        non_resource_urls: Some(vec!["*".into()]),
                        ..Default::default()
                    },
                ];
                escalation::confirm_no_escalation(&api.rbac, user, ns, &everything).map_err(
                    |_| {
                        forbidden(
                            res,
                            name,
                            "must have cluster-admin privileges to use the aggregationRule",
                        )
                    },
                )?;
            }
            Ok(())
        }
        _ => {
            let Some(role_ref) = new
                .get("roleRef")
                .cloned()
                .and_then(|r| serde_json::from_value::<RoleRef>(r).ok())
            else {
                return Ok(());
            };
            if escalation::binding_authorized(z, user, &role_ref, ns) {
                return Ok(());
            }
            let rules = api
                .rbac
                .read()
                .role_ref_rules(&role_ref, ns)
                .map_err(|e| forbidden(res, name, &e.to_string()))?;
            escalation::confirm_no_escalation(&api.rbac, user, ns, &rules)
                .map_err(|why| forbidden(res, name, &why))
        }
    }
}
