//! The RBAC decision (Kubernetes' `RBACAuthorizer.Authorize`): allow when
//! any rule the user holds in the request's namespace allows the request;
//! otherwise no, with the resolution errors as the reason. It reads the
//! in-memory `Policy` only.

use k8s_openapi::api::authorization::v1::{NonResourceRule, ResourceRule};

use super::policy::Policy;
use super::rule;
use crate::auth::{Attributes, Decision, User};

pub fn authorize(policy: &Policy, user: &User, a: &Attributes<'_>) -> Decision {
    if !policy.is_synced() {
        return Decision::Deny("RBAC: the policy has not been loaded from storage yet".into());
    }
    let verb = a.verb.map(|v| v.as_str());
    let mut allowed = false;
    let mut errors = Vec::new();
    policy
        .read()
        .visit_rules_for(user, a.namespace, &mut |_, r| match r {
            Ok(r) if rule::allows(a, verb, r) => {
                allowed = true;
                false
            }
            Ok(_) => true,
            Err(e) => {
                errors.push(e.to_string());
                true
            }
        });
    if allowed {
        return Decision::Allow;
    }
    Decision::Deny(match errors.len() {
        0 => String::new(),
        1 => format!("RBAC: {}", errors[0]),
        _ => format!("RBAC: [{}]", errors.join(", ")),
    })
}

/// What `kubectl auth can-i --list` shows: the user's rules in
/// `namespace`, split into resource and non-resource rules, and the
/// resolution errors.
pub fn rules_review(
    policy: &Policy,
    user: &User,
    namespace: Option<&str>,
) -> (Vec<ResourceRule>, Vec<NonResourceRule>, Vec<String>) {
    let (rules, errors) = policy.read().rules_for(user, namespace);
    let mut resource = Vec::new();
    let mut non_resource = Vec::new();
    for r in rules {
        if r.resources.as_ref().is_some_and(|v| !v.is_empty()) {
            resource.push(ResourceRule {
                verbs: r.verbs.clone(),
                api_groups: r.api_groups.clone(),
                resources: r.resources.clone(),
                resource_names: r.resource_names.clone(),
            });
        }
        if r.non_resource_urls.as_ref().is_some_and(|v| !v.is_empty()) {
            non_resource.push(NonResourceRule {
                verbs: r.verbs,
                non_resource_urls: r.non_resource_urls,
            });
        }
    }
    (
        resource,
        non_resource,
        errors.iter().map(ToString::to_string).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::rbac::policy::Kind;
    use crate::auth::Verb;
    use serde_json::json;

    #[test]
    fn default_deny_until_synced_and_without_rules() {
        let p = Policy::new();
        let bob = User {
            name: "bob".into(),
            groups: vec![],
            uid: None,
        };
        let a = Attributes {
            verb: Some(Verb::Get),
            resource: "pods",
            namespace: Some("a"),
            ..Default::default()
        };
        assert!(
            matches!(authorize(&p, &bob, &a), Decision::Deny(m) if m.contains("not been loaded"))
        );
        for k in Kind::ALL {
            p.replace(k, &[]);
        }
        assert_eq!(authorize(&p, &bob, &a), Decision::Deny(String::new()));
        p.update(|ix| {
            ix.put(Kind::ClusterRole, &json!({"metadata": {"name": "pods"}, "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]}));
            ix.put(Kind::RoleBinding, &json!({"metadata": {"name": "b", "namespace": "a"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "pods"},
                "subjects": [{"kind": "User", "name": "bob"}]}));
            ix.put(Kind::RoleBinding, &json!({"metadata": {"name": "broken", "namespace": "b"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "nope"},
                "subjects": [{"kind": "User", "name": "bob"}]}));
        });
        assert_eq!(authorize(&p, &bob, &a), Decision::Allow);
        let mut b = a.clone();
        b.namespace = Some("b");
        assert_eq!(
            authorize(&p, &bob, &b),
            Decision::Deny("RBAC: role.rbac.authorization.k8s.io \"nope\" not found".into())
        );
        let (rr, nr, errs) = rules_review(&p, &bob, Some("a"));
        assert_eq!((rr.len(), nr.len(), errs.len()), (1, 0, 0));
    }
}
