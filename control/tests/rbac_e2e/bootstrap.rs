//! The bootstrap roles: made at start-up, aggregated (admin ⊇ edit ⊇
//! view), reconciled on restart (a deleted one comes back, a missing rule
//! is added) but never overwritten when a user set autoupdate to false.

use libtest_mimic::Failed;

use crate::support::*;

fn rules_of(r: &Rbac, role: &str) -> Result<Vec<serde_json::Value>, Failed> {
    let v = json(&r.admin(&["get", "clusterrole", role, "-o", "json"], None)?)?;
    Ok(v["rules"].as_array().cloned().unwrap_or_default())
}

fn grants(rules: &[serde_json::Value], group: &str, resource: &str, verb: &str) -> bool {
    let has = |v: &serde_json::Value, s: &str| {
        v.as_array()
            .is_some_and(|a| a.iter().any(|x| x == s || x == "*"))
    };
    rules.iter().any(|r| {
        has(&r["apiGroups"], group) && has(&r["resources"], resource) && has(&r["verbs"], verb)
    })
}

pub fn bootstrap_roles_are_reconciled_not_overwritten(r: &Rbac) -> Result<(), Failed> {
    let names = r.admin(&["get", "clusterroles", "-o", "name"], None)?;
    for want in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:discovery",
        "system:basic-user",
        "system:public-info-viewer",
        "capstan:readers",
    ] {
        check(
            names.contains(&format!("clusterrole.rbac.authorization.k8s.io/{want}\n")),
            || names.clone(),
        )?;
    }
    let crb = json(&r.admin(
        &["get", "clusterrolebinding", "cluster-admin", "-o", "json"],
        None,
    )?)?;
    check(crb["subjects"][0]["name"] == "system:masters", || {
        format!("{crb}")
    })?;
    // Aggregation filled admin, edit and view from the labelled roles.
    let admin = rules_of(r, "admin")?;
    let edit = rules_of(r, "edit")?;
    let view = rules_of(r, "view")?;
    check(
        grants(&view, "", "pods", "list")
            && !grants(&view, "", "secrets", "get")
            && grants(&edit, "", "pods", "list")
            && grants(&edit, "apps", "deployments", "create")
            && !grants(&edit, "rbac.authorization.k8s.io", "roles", "create")
            && grants(&admin, "rbac.authorization.k8s.io", "roles", "create")
            && grants(&admin, "apps", "deployments", "create"),
        || format!("admin {admin:?}\nedit {edit:?}\nview {view:?}"),
    )?;
    // A new labelled role joins the aggregate.
    r.admin(
        &["apply", "-f", "-"],
        Some("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: rbac-e2e-widgets-view\n  labels:\n    rbac.authorization.k8s.io/aggregate-to-view: \"true\"\nrules:\n- apiGroups: [\"widgets.example.com\"]\n  resources: [\"widgets\"]\n  verbs: [\"get\"]\n"),
    )?;
    capstan_lab::wait::wait_until("view to aggregate widgets", POLICY_LAG, || {
        rules_of(r, "view").is_ok_and(|v| grants(&v, "widgets.example.com", "widgets", "get"))
    })?;
    // Users' edits: a deleted role comes back; a rule removed from an
    // autoupdate role comes back; an autoupdate=false role stays as edited.
    r.admin(&["delete", "clusterrole", "system:monitoring"], None)?;
    r.admin(
        &[
            "patch",
            "clusterrole",
            "system:public-info-viewer",
            "--type=merge",
            "-p",
            r#"{"rules":[{"verbs":["get"],"nonResourceURLs":["/version"]}]}"#,
        ],
        None,
    )?;
    r.admin(
        &["patch", "clusterrole", "capstan:readers", "--type=merge", "-p",
          r#"{"metadata":{"annotations":{"rbac.authorization.kubernetes.io/autoupdate":"false"}},"rules":[{"verbs":["get"],"apiGroups":[""],"resources":["pods"]}]}"#],
        None,
    )?;
    r.s.cp().restart()?;
    let monitoring = rules_of(r, "system:monitoring")?;
    check(!monitoring.is_empty(), || {
        "system:monitoring not recreated".into()
    })?;
    let info = json(&r.admin(
        &[
            "get",
            "clusterrole",
            "system:public-info-viewer",
            "-o",
            "json",
        ],
        None,
    )?)?;
    let urls = info["rules"].to_string();
    check(
        urls.contains("/healthz") && urls.contains("/version"),
        || urls.clone(),
    )?;
    let readers = rules_of(r, "capstan:readers")?;
    check(
        readers.len() == 1 && readers[0]["resources"] == serde_json::json!(["pods"]),
        || format!("{readers:?}"),
    )?;
    // Put the readers role back for whoever runs next.
    r.admin(
        &["patch", "clusterrole", "capstan:readers", "--type=merge", "-p",
          r#"{"metadata":{"annotations":{"rbac.authorization.kubernetes.io/autoupdate":"true"}}}"#],
        None,
    )?;
    Ok(())
}
