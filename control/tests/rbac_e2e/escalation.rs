//! Escalation prevention as Kubernetes enforces it: a RoleBinding to a
//! role with more than its author holds is refused (403, naming what is
//! missing) unless the author may `bind` that role; a Role or ClusterRole
//! with more than its author holds is refused unless they may `escalate`.

use libtest_mimic::Failed;

use crate::support::*;

const NOT_HELD: &str = "is attempting to grant RBAC permissions not currently held";

pub fn binding_more_than_held_is_forbidden_unless_bind(r: &Rbac) -> Result<(), Failed> {
    let u = "rbac-binder";
    let ns = "rbac-bind";
    r.namespace(ns)?;
    // The author: get pods, and may write RoleBindings here.
    let rules = "- apiGroups: [\"\"]\n  resources: [\"pods\"]\n  verbs: [\"get\"]\n\
                 - apiGroups: [\"rbac.authorization.k8s.io\"]\n  resources: [\"rolebindings\"]\n  verbs: [\"create\", \"get\", \"patch\", \"update\"]\n";
    r.admin(
        &["apply", "-f", "-"],
        Some(&role_yaml("binder", Some(ns), rules)),
    )?;
    r.admin(
        &["apply", "-f", "-"],
        Some(&binding_yaml("binder", Some(ns), "Role", "binder", u)),
    )?;
    r.admin(
        &["apply", "-f", "-"],
        Some(&role_yaml(
            "pods-get",
            Some(ns),
            "- apiGroups: [\"\"]\n  resources: [\"pods\"]\n  verbs: [\"get\"]\n",
        )),
    )?;
    r.wait_can_i(Some(u), &["create", "rolebindings", "-n", ns], true)?;
    for role in ["edit", "admin"] {
        let b = binding_yaml(
            &format!("to-{role}"),
            Some(ns),
            "ClusterRole",
            role,
            "someone",
        );
        let err = r.fails(Some(u), &["create", "-f", "-"], Some(&b))?;
        check(
            err.contains(&format!(
                "rolebindings.rbac.authorization.k8s.io \"to-{role}\" is forbidden: user \"{u}\" (groups=[\"rbac-e2e\" \"system:authenticated\"]) {NOT_HELD}"
            )) && err.contains("Verbs:[\"create\" \"delete\" \"deletecollection\" \"patch\" \"update\"]"),
            || err.clone(),
        )?;
    }
    // A role whose rules the author holds may be bound.
    let ok = binding_yaml("to-pods-get", Some(ns), "Role", "pods-get", "someone");
    r.ok(u, &["create", "-f", "-"], Some(&ok))?;
    // A missing role is refused too: its rules cannot be checked.
    let missing = binding_yaml("to-missing", Some(ns), "Role", "no-such-role", "someone");
    let err = r.fails(Some(u), &["create", "-f", "-"], Some(&missing))?;
    check(
        err.contains("role.rbac.authorization.k8s.io \"no-such-role\" not found"),
        || err.clone(),
    )?;
    // `bind` on the ClusterRole edit (in this namespace) lets the author
    // bind exactly that role, though he holds none of its rules.
    let bind = "- apiGroups: [\"rbac.authorization.k8s.io\"]\n  resources: [\"clusterroles\"]\n  verbs: [\"bind\"]\n  resourceNames: [\"edit\"]\n";
    r.admin(
        &["apply", "-f", "-"],
        Some(&role_yaml("bind-edit", Some(ns), bind)),
    )?;
    r.admin(
        &["apply", "-f", "-"],
        Some(&binding_yaml("bind-edit", Some(ns), "Role", "bind-edit", u)),
    )?;
    r.wait_can_i(Some(u), &["bind", "clusterroles/edit", "-n", ns], true)?;
    let b = binding_yaml("to-edit", Some(ns), "ClusterRole", "edit", "someone");
    r.ok(u, &["create", "-f", "-"], Some(&b))?;
    let b = binding_yaml("to-admin", Some(ns), "ClusterRole", "admin", "someone");
    let err = r.fails(Some(u), &["create", "-f", "-"], Some(&b))?;
    check(err.contains(NOT_HELD), || err.clone())?;
    // The admin is never held back.
    r.admin(&["create", "-f", "-"], Some(&b))?;
    // The grant works for the bound user: `someone` may now edit here.
    r.wait_can_i(
        None,
        &["create", "deployments", "-n", ns, "--as=someone"],
        true,
    )?;
    Ok(())
}

pub fn role_with_more_than_held_is_forbidden_unless_escalate(r: &Rbac) -> Result<(), Failed> {
    let u = "rbac-roler";
    let ns = "rbac-esc";
    r.namespace(ns)?;
    let rules = "- apiGroups: [\"\"]\n  resources: [\"pods\"]\n  verbs: [\"get\", \"list\"]\n\
                 - apiGroups: [\"rbac.authorization.k8s.io\"]\n  resources: [\"roles\"]\n  verbs: [\"create\", \"get\", \"patch\", \"update\"]\n";
    r.admin(
        &["apply", "-f", "-"],
        Some(&role_yaml("roler", Some(ns), rules)),
    )?;
    r.admin(
        &["apply", "-f", "-"],
        Some(&binding_yaml("roler", Some(ns), "Role", "roler", u)),
    )?;
    // Cluster-wide: may create ClusterRoles, holds nothing else there.
    let cluster = "- apiGroups: [\"rbac.authorization.k8s.io\"]\n  resources: [\"clusterroles\"]\n  verbs: [\"create\", \"get\", \"patch\"]\n";
    r.admin(
        &["apply", "-f", "-"],
        Some(&role_yaml("rbac-roler", None, cluster)),
    )?;
    r.admin(
        &["apply", "-f", "-"],
        Some(&binding_yaml(
            "rbac-roler",
            None,
            "ClusterRole",
            "rbac-roler",
            u,
        )),
    )?;
    r.wait_can_i(Some(u), &["create", "clusterroles"], true)?;
    r.wait_can_i(Some(u), &["create", "roles", "-n", ns], true)?;
    // Held rules (a subset, split differently): allowed.
    let held = "- apiGroups: [\"\"]\n  resources: [\"pods\"]\n  verbs: [\"list\"]\n- apiGroups: [\"\"]\n  resources: [\"pods\"]\n  verbs: [\"get\"]\n  resourceNames: [\"p1\"]\n";
    r.ok(
        u,
        &["apply", "-f", "-"],
        Some(&role_yaml("held", Some(ns), held)),
    )?;
    // One verb more: refused, naming exactly what is missing.
    let more = "- apiGroups: [\"\"]\n  resources: [\"pods\"]\n  verbs: [\"get\", \"delete\"]\n";
    let err = r.fails(
        Some(u),
        &["create", "-f", "-"],
        Some(&role_yaml("more", Some(ns), more)),
    )?;
    check(
        err.contains(&format!(
            "roles.rbac.authorization.k8s.io \"more\" is forbidden: user \"{u}\""
        )) && err.contains(NOT_HELD)
            && err.contains("{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"delete\"]}"),
        || err.clone(),
    )?;
    // An update (apply's patch) that adds rules is refused the same way.
    let err = r.fails(
        Some(u),
        &["apply", "-f", "-"],
        Some(&role_yaml("held", Some(ns), more)),
    )?;
    check(err.contains(NOT_HELD), || err.clone())?;
    // Namespaced rules do not count cluster-wide.
    let pods = "- apiGroups: [\"\"]\n  resources: [\"pods\"]\n  verbs: [\"get\"]\n";
    let err = r.fails(
        Some(u),
        &["create", "-f", "-"],
        Some(&role_yaml("rbac-roler-pods", None, pods)),
    )?;
    check(
        err.contains("clusterroles.rbac.authorization.k8s.io \"rbac-roler-pods\" is forbidden")
            && err.contains(NOT_HELD),
        || err.clone(),
    )?;
    // Aggregation gathers anything: setting it takes full authority.
    let agg = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: rbac-roler-agg\naggregationRule:\n  clusterRoleSelectors:\n  - matchLabels:\n      rbac-e2e: \"agg\"\n";
    let err = r.fails(Some(u), &["create", "-f", "-"], Some(agg))?;
    check(
        err.contains("must have cluster-admin privileges to use the aggregationRule"),
        || err.clone(),
    )?;
    // `escalate` on clusterroles lifts the checks.
    let esc = "- apiGroups: [\"rbac.authorization.k8s.io\"]\n  resources: [\"clusterroles\"]\n  verbs: [\"create\", \"get\", \"patch\", \"escalate\"]\n";
    r.admin(
        &["apply", "-f", "-"],
        Some(&role_yaml("rbac-roler", None, esc)),
    )?;
    r.wait_can_i(Some(u), &["escalate", "clusterroles"], true)?;
    r.ok(
        u,
        &["create", "-f", "-"],
        Some(&role_yaml("rbac-roler-pods", None, pods)),
    )?;
    r.ok(u, &["create", "-f", "-"], Some(agg))?;
    Ok(())
}
