//! SubjectAccessReview and LocalSubjectAccessReview answer as the request
//! itself would be answered, and only for those allowed to ask;
//! `kubectl auth can-i --list` shows a user's RBAC rules.

use libtest_mimic::Failed;

use crate::support::*;

fn sar(user: &str, groups: &[&str], attrs: &str) -> String {
    let groups = groups
        .iter()
        .map(|g| format!("\n  - {g}"))
        .collect::<String>();
    format!(
        "apiVersion: authorization.k8s.io/v1\nkind: SubjectAccessReview\nspec:\n  user: {user}\n  groups:{groups}\n{attrs}"
    )
}

pub fn subject_access_reviews_answer_as_requests(r: &Rbac) -> Result<(), Failed> {
    let ns = "rbac-sar";
    r.namespace(ns)?;
    r.admin(
        &["apply", "-f", "-"],
        Some(&role_yaml(
            "cm-reader",
            Some(ns),
            "- apiGroups: [\"\"]\n  resources: [\"configmaps\"]\n  verbs: [\"get\", \"list\"]\n",
        )),
    )?;
    r.admin(
        &["apply", "-f", "-"],
        Some(&binding_yaml(
            "cm-reader",
            Some(ns),
            "Role",
            "cm-reader",
            "sar-subject",
        )),
    )?;
    r.wait_can_i(
        None,
        &["list", "configmaps", "-n", ns, "--as=sar-subject"],
        true,
    )?;
    let ask = |user: &str, groups: &[&str], attrs: &str| -> Result<serde_json::Value, Failed> {
        let out = r.admin(
            &["create", "-f", "-", "-o", "json"],
            Some(&sar(user, groups, attrs)),
        )?;
        json(&out)
    };
    let cm = |verb: &str, ns: &str| {
        format!("  resourceAttributes:\n    verb: {verb}\n    resource: configmaps\n    namespace: {ns}\n")
    };
    let v = ask("sar-subject", &["g"], &cm("list", ns))?;
    check(
        v["kind"] == "SubjectAccessReview" && v["status"]["allowed"] == true,
        || format!("{v}"),
    )?;
    let v = ask("sar-subject", &["g"], &cm("delete", ns))?;
    check(v["status"]["allowed"] == false, || format!("{v}"))?;
    let v = ask("sar-subject", &["g"], &cm("list", "default"))?;
    check(v["status"]["allowed"] == false, || format!("{v}"))?;
    // Groups are taken as given: system:masters may, whoever it is.
    let v = ask("anyone", &["system:masters"], &cm("delete", ns))?;
    check(v["status"]["allowed"] == true, || format!("{v}"))?;
    // Non-resource URLs go through RBAC too.
    let url = "  nonResourceAttributes:\n    verb: get\n    path: /apis/apps\n";
    let v = ask("sar-subject", &["system:authenticated"], url)?;
    check(v["status"]["allowed"] == true, || format!("{v}"))?;
    let v = ask("sar-subject", &["g"], url)?;
    check(v["status"]["allowed"] == false, || format!("{v}"))?;
    // kubectl's YAML output, as the check reads it.
    let yaml = r.admin(
        &["create", "-f", "-", "-o", "yaml"],
        Some(&sar("sar-subject", &["g"], &cm("get", ns))),
    )?;
    check(yaml.contains("allowed: true"), || yaml.clone())?;
    // Malformed: no user or group; both attribute kinds.
    let err = r.fails(None, &["create", "-f", "-"], Some("apiVersion: authorization.k8s.io/v1\nkind: SubjectAccessReview\nspec:\n  resourceAttributes:\n    verb: get\n"))?;
    check(
        err.contains("at least one of user or group must be specified"),
        || err.clone(),
    )?;
    // LocalSubjectAccessReview: in a namespace, which the attributes match.
    let local = format!(
        "apiVersion: authorization.k8s.io/v1\nkind: LocalSubjectAccessReview\nmetadata:\n  namespace: {ns}\nspec:\n  user: sar-subject\n{}",
        cm("get", ns)
    );
    let v = json(&r.admin(&["create", "-f", "-", "-o", "json"], Some(&local))?)?;
    check(
        v["status"]["allowed"] == true && v["metadata"]["namespace"] == ns,
        || format!("{v}"),
    )?;
    let wrong = local.replace(&format!("    namespace: {ns}\n"), "    namespace: other\n");
    let err = r.fails(None, &["create", "-f", "-"], Some(&wrong))?;
    check(err.contains("must match namespace"), || err.clone())?;
    // Asking about others is for those granted it (cluster-admin here).
    let err = r.fails(
        Some("rbac-reviewer"),
        &["create", "-f", "-"],
        Some(&sar("x", &["g"], &cm("get", ns))),
    )?;
    check(
        err.contains("subjectaccessreviews is forbidden: User \"rbac-reviewer\" cannot create resource \"subjectaccessreviews\" in API group \"authorization.k8s.io\" at the cluster scope"),
        || err.clone(),
    )?;
    // `admin` in a namespace may ask there (a LocalSubjectAccessReview).
    r.admin(
        &[
            "create",
            "rolebinding",
            "reviewer-admin",
            "--clusterrole=admin",
            "--user=rbac-reviewer",
            "-n",
            ns,
        ],
        None,
    )?;
    r.wait_can_i(
        Some("rbac-reviewer"),
        &["create", "localsubjectaccessreviews", "-n", ns],
        true,
    )?;
    let v = json(&r.ok(
        "rbac-reviewer",
        &["create", "-f", "-", "-o", "json"],
        Some(&local),
    )?)?;
    check(v["status"]["allowed"] == true, || format!("{v}"))?;
    Ok(())
}

pub fn can_i_list_shows_the_rbac_rules(r: &Rbac) -> Result<(), Failed> {
    let u = "rbac-reviewer";
    let ns = "rbac-list";
    r.namespace(ns)?;
    r.admin(
        &["apply", "-f", "-"],
        Some(&role_yaml("lister", Some(ns), "- apiGroups: [\"apps\"]\n  resources: [\"deployments\"]\n  verbs: [\"get\", \"watch\"]\n  resourceNames: [\"web\"]\n")),
    )?;
    r.admin(
        &["apply", "-f", "-"],
        Some(&binding_yaml("lister", Some(ns), "Role", "lister", u)),
    )?;
    r.wait_can_i(Some(u), &["get", "deployments.apps/web", "-n", ns], true)?;
    let list = r.ok(u, &["auth", "can-i", "--list", "-n", ns], None)?;
    let line = list
        .lines()
        .find(|l| l.starts_with("deployments.apps"))
        .unwrap_or_default();
    check(
        line.contains("[web]") && line.contains("[get watch]"),
        || list.clone(),
    )?;
    // The bootstrap grants every user has are listed too.
    check(
        list.contains("selfsubjectaccessreviews.authorization.k8s.io") && list.contains("/api/*"),
        || list.clone(),
    )?;
    Ok(())
}
