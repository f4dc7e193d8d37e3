//! Escalation prevention, as Kubernetes' RBAC storage does it
//! (pkg/registry/rbac/{role,clusterrole,rolebinding,clusterrolebinding}/
//! policybased): nobody writes a role with rules they do not hold unless
//! allowed to `escalate`, and nobody binds a role whose rules they do not
//! hold unless allowed to `bind` it. `system:masters` may do both. The
//! owner's rules are RBAC's alone (the node rules grant nothing here).

use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef};
use serde_json::Value;

use super::covers;
use super::policy::Policy;
use crate::auth::{Attributes, Authorizer, Decision, User, Verb, MASTERS_GROUP};

pub const GROUP: &str = "rbac.authorization.k8s.io";

/// Kubernetes' `EscalationAllowed`: the superuser group skips the checks.
pub fn escalation_allowed(user: &User) -> bool {
    user.groups.iter().any(|g| g == MASTERS_GROUP)
}

fn may(z: &dyn Authorizer, user: &User, verb: Verb, resource: &str, ns: &str, name: &str) -> bool {
    let a = Attributes {
        verb: Some(verb),
        group: GROUP,
        resource,
        namespace: (!ns.is_empty()).then_some(ns),
        name: (!name.is_empty()).then_some(name),
        ..Default::default()
    };
    z.authorize(user, &a) == Decision::Allow
}

/// `escalate` on `roles` or `clusterroles` (`RoleEscalationAuthorized`).
pub fn role_escalation_authorized(
    z: &dyn Authorizer,
    user: &User,
    resource: &str,
    ns: &str,
    name: &str,
) -> bool {
    may(z, user, Verb::Escalate, resource, ns, name)
}

/// `bind` on the referenced role (`BindingAuthorized`): a RoleBinding's
/// reference is checked in the binding's namespace, even for a ClusterRole.
pub fn binding_authorized(z: &dyn Authorizer, user: &User, role_ref: &RoleRef, ns: &str) -> bool {
    let resource = match role_ref.kind.as_str() {
        "Role" => "roles",
        "ClusterRole" => "clusterroles",
        _ => return false,
    };
    may(z, user, Verb::Bind, resource, ns, &role_ref.name)
}

fn go_quoted(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", items.join(" "))
}

/// Kubernetes' `ConfirmNoEscalation`: the user's RBAC rules in `ns` ("" for
/// cluster-wide) cover `rules`, else the message naming what is missing.
pub fn confirm_no_escalation(
    policy: &Policy,
    user: &User,
    ns: &str,
    rules: &[PolicyRule],
) -> Result<(), String> {
    let (owner, errors) = policy
        .read()
        .rules_for(user, (!ns.is_empty()).then_some(ns));
    let Err(missing) = covers::covers(&owner, rules) else {
        return Ok(());
    };
    let mut msg = format!(
        "user {:?} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        user.name,
        go_quoted(&user.groups),
        covers::describe_missing(missing)
    );
    if !errors.is_empty() {
        let errs: Vec<String> = errors.iter().map(ToString::to_string).collect();
        msg.push_str(&format!("; resolution errors: [{}]", errs.join(" ")));
    }
    Err(msg)
}

/// Whether an update changes only what the garbage collector writes
/// (owner references, finalizers): those need no escalation check.
pub fn only_gc_fields_change(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in [
                "ownerReferences",
                "finalizers",
                "resourceVersion",
                "managedFields",
            ] {
                m.remove(k);
            }
        }
        v
    };
    strip(old) == strip(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::rbac::policy::Kind;
    use serde_json::json;

    fn bob() -> User {
        User {
            name: "bob".into(),
            groups: vec!["dev".into(), "system:authenticated".into()],
            uid: None,
        }
    }

    fn rule(verbs: &[&str], resources: &[&str]) -> PolicyRule {
        PolicyRule {
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            api_groups: Some(vec![String::new()]),
            resources: Some(resources.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn no_escalation_beyond_held_rules() {
        let p = Policy::new();
        p.update(|ix| {
            ix.put(
                Kind::Role,
                &json!({"metadata": {"name": "r", "namespace": "a"},
                "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]}),
            );
            ix.put(
                Kind::RoleBinding,
                &json!({"metadata": {"name": "b", "namespace": "a"},
                "roleRef": {"apiGroup": GROUP, "kind": "Role", "name": "r"},
                "subjects": [{"kind": "User", "name": "bob"}]}),
            );
        });
        assert_eq!(
            confirm_no_escalation(&p, &bob(), "a", &[rule(&["get"], &["pods"])]),
            Ok(())
        );
        let e = confirm_no_escalation(&p, &bob(), "a", &[rule(&["get", "delete"], &["pods"])])
            .unwrap_err();
        assert_eq!(
            e,
            "user \"bob\" (groups=[\"dev\" \"system:authenticated\"]) is attempting to grant RBAC \
             permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"delete\"]}"
        );
        // The namespace's rules do not count cluster-wide or elsewhere.
        assert!(confirm_no_escalation(&p, &bob(), "", &[rule(&["get"], &["pods"])]).is_err());
        assert!(confirm_no_escalation(&p, &bob(), "b", &[rule(&["get"], &["pods"])]).is_err());
        // Nothing to grant is never an escalation.
        assert_eq!(confirm_no_escalation(&p, &bob(), "b", &[]), Ok(()));
    }

    #[test]
    fn gc_fields_only() {
        let old = json!({"metadata": {"name": "r", "resourceVersion": "1"}, "rules": []});
        let gc = json!({"metadata": {"name": "r", "finalizers": ["x"], "ownerReferences": []}, "rules": []});
        let more = json!({"metadata": {"name": "r"}, "rules": [{"verbs": ["*"]}]});
        assert!(only_gc_fields_change(&old, &gc));
        assert!(!only_gc_fields_change(&old, &more));
    }
}
