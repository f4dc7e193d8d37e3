//! What RBAC grants a token user: nothing by default (403 in Kubernetes'
//! words), a RoleBinding's rules only in its namespace, and discovery and
//! the self reviews to everyone through the bootstrap roles. Also the
//! kinds themselves as kubectl handles them: protobuf generators,
//! `explain`, strict validation.

use libtest_mimic::Failed;

use crate::support::*;

pub fn role_binding_grants_only_in_its_namespace(r: &Rbac) -> Result<(), Failed> {
    let u = "rbac-grants";
    for ns in ["rbac-a", "rbac-b"] {
        r.namespace(ns)?;
    }
    let err = r.fails(Some(u), &["get", "pods", "-n", "rbac-a"], None)?;
    check(
        err.contains(&format!(
            "pods is forbidden: User \"{u}\" cannot list resource \"pods\" in API group \"\" in the namespace \"rbac-a\""
        )),
        || err.clone(),
    )?;
    r.admin(
        &["apply", "-f", "-"],
        Some(&role_yaml(
            "pod-getter",
            Some("rbac-a"),
            "- apiGroups: [\"\"]\n  resources: [\"pods\"]\n  verbs: [\"get\"]\n",
        )),
    )?;
    r.admin(
        &["apply", "-f", "-"],
        Some(&binding_yaml(
            "pod-getter",
            Some("rbac-a"),
            "Role",
            "pod-getter",
            u,
        )),
    )?;
    r.wait_can_i(Some(u), &["get", "pods", "-n", "rbac-a"], true)?;
    // Exactly the granted verb, in exactly that namespace.
    check(
        !r.can_i(Some(u), &["list", "pods", "-n", "rbac-a"])?,
        || "list granted".into(),
    )?;
    check(!r.can_i(Some(u), &["get", "pods", "-n", "rbac-b"])?, || {
        "rbac-b granted".into()
    })?;
    check(!r.can_i(Some(u), &["get", "pods", "-A"])?, || {
        "cluster-wide granted".into()
    })?;
    check(
        !r.can_i(
            Some(u),
            &["get", "pods", "--subresource=log", "-n", "rbac-a"],
        )?,
        || "subresource granted".into(),
    )?;
    // A real get is authorized (NotFound, not Forbidden) only there.
    let err = r.fails(Some(u), &["get", "pod", "nope", "-n", "rbac-a"], None)?;
    check(
        err.contains("NotFound") || err.contains("not found"),
        || err.clone(),
    )?;
    let err = r.fails(Some(u), &["get", "pod", "nope", "-n", "rbac-b"], None)?;
    check(
        err.contains("Forbidden") || err.contains("forbidden"),
        || err.clone(),
    )?;
    // A ClusterRole bound by a RoleBinding also grants only in the namespace.
    r.admin(
        &[
            "create",
            "rolebinding",
            "view-b",
            "--clusterrole=view",
            &format!("--user={u}"),
            "-n",
            "rbac-b",
        ],
        None,
    )?;
    r.wait_can_i(Some(u), &["list", "configmaps", "-n", "rbac-b"], true)?;
    check(
        !r.can_i(Some(u), &["list", "configmaps", "-n", "rbac-a"])?,
        || "view leaked to rbac-a".into(),
    )?;
    check(
        !r.can_i(Some(u), &["list", "secrets", "-n", "rbac-b"])?,
        || "view reads secrets".into(),
    )?;
    // Deleting the binding takes the grant away again.
    r.admin(
        &["delete", "rolebinding", "pod-getter", "-n", "rbac-a"],
        None,
    )?;
    r.wait_can_i(Some(u), &["get", "pods", "-n", "rbac-a"], false)?;
    // A ClusterRoleBinding grants everywhere.
    r.admin(
        &[
            "create",
            "clusterrolebinding",
            "rbac-grants-view",
            "--clusterrole=view",
            &format!("--user={u}"),
        ],
        None,
    )?;
    r.wait_can_i(Some(u), &["list", "pods", "-A"], true)?;
    r.admin(&["delete", "clusterrolebinding", "rbac-grants-view"], None)?;
    r.wait_can_i(Some(u), &["list", "pods", "-A"], false)?;
    Ok(())
}

pub fn discovery_and_self_reviews_for_every_user(r: &Rbac) -> Result<(), Failed> {
    let u = "rbac-nobody";
    // No binding of its own: discovery, OpenAPI, version and the self
    // reviews come from system:discovery and system:basic-user.
    let res = r.ok(
        u,
        &["api-resources", "--api-group=rbac.authorization.k8s.io"],
        None,
    )?;
    for kind in ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"] {
        check(res.contains(kind), || res.clone())?;
    }
    r.ok(u, &["version"], None)?;
    r.ok(u, &["get", "--raw", "/openapi/v3"], None)?;
    r.ok(
        u,
        &["get", "--raw", "/apis/rbac.authorization.k8s.io/v1"],
        None,
    )?;
    check(!r.can_i(Some(u), &["get", "pods"])?, || {
        "nobody may get pods".into()
    })?;
    let who = r.ok(u, &["auth", "whoami"], None)?;
    check(who.contains(u), || who.clone())?;
    // Taking system:discovery away (autoupdate off, so the server leaves
    // the edit alone) closes discovery for everyone but the admin.
    r.admin(
        &[
            "annotate",
            "--overwrite",
            "clusterrolebinding",
            "system:discovery",
            "rbac.authorization.kubernetes.io/autoupdate=false",
        ],
        None,
    )?;
    r.admin(
        &[
            "patch",
            "clusterrolebinding",
            "system:discovery",
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/subjects","value":[]}]"#,
        ],
        None,
    )?;
    let closed = capstan_lab::wait::wait_until("discovery to close", POLICY_LAG, || {
        r.run(Some(u), &["get", "--raw", "/apis"], None)
            .is_ok_and(|o| !o.status.success() && text(&o.stderr).contains("Forbidden"))
    });
    // Put it back before judging, so a failure leaves a usable cluster.
    r.admin(
        &["patch", "clusterrolebinding", "system:discovery", "--type=json", "-p",
          r#"[{"op":"replace","path":"/subjects","value":[{"apiGroup":"rbac.authorization.k8s.io","kind":"Group","name":"system:authenticated"}]}]"#],
        None,
    )?;
    r.admin(
        &[
            "annotate",
            "--overwrite",
            "clusterrolebinding",
            "system:discovery",
            "rbac.authorization.kubernetes.io/autoupdate=true",
        ],
        None,
    )?;
    closed?;
    // Discovery reopens once the index has the restored binding.
    capstan_lab::wait::wait_until("discovery to reopen", POLICY_LAG, || {
        r.run(Some(u), &["get", "--raw", "/apis"], None)
            .is_ok_and(|o| o.status.success())
    })?;
    Ok(())
}

pub fn generators_explain_and_strict_validation(r: &Rbac) -> Result<(), Failed> {
    r.namespace("rbac-gen")?;
    // kubectl's generators send protobuf bodies.
    r.admin(
        &[
            "create",
            "clusterrole",
            "gen-reader",
            "--verb=get,list",
            "--resource=pods,deployments.apps",
        ],
        None,
    )?;
    r.admin(
        &[
            "create",
            "role",
            "gen-role",
            "--verb=get",
            "--resource=configmaps",
            "--resource-name=a",
            "-n",
            "rbac-gen",
        ],
        None,
    )?;
    r.admin(
        &[
            "create",
            "rolebinding",
            "gen-rb",
            "--role=gen-role",
            "--user=someone",
            "--serviceaccount=rbac-gen:sa",
            "-n",
            "rbac-gen",
        ],
        None,
    )?;
    r.admin(
        &[
            "create",
            "clusterrolebinding",
            "gen-crb",
            "--clusterrole=gen-reader",
            "--group=g1",
        ],
        None,
    )?;
    let cr = json(&r.admin(&["get", "clusterrole", "gen-reader", "-o", "json"], None)?)?;
    check(
        cr["rules"][0]["verbs"] == serde_json::json!(["get", "list"])
            && cr["rules"].as_array().is_some_and(|r| r.len() == 2),
        || format!("{cr}"),
    )?;
    let rb = json(&r.admin(
        &[
            "get",
            "rolebinding",
            "gen-rb",
            "-n",
            "rbac-gen",
            "-o",
            "json",
        ],
        None,
    )?)?;
    check(
        rb["roleRef"]["kind"] == "Role"
            && rb["subjects"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|x| x["kind"] == "User" && x["apiGroup"] == "rbac.authorization.k8s.io")
                    && s.iter()
                        .any(|x| x["kind"] == "ServiceAccount" && x["namespace"] == "rbac-gen")
            }),
        || format!("{rb}"),
    )?;
    // roleRef never changes.
    let err = r.fails(
        None,
        &[
            "patch",
            "rolebinding",
            "gen-rb",
            "-n",
            "rbac-gen",
            "--type=merge",
            "-p",
            r#"{"roleRef":{"name":"other"}}"#,
        ],
        None,
    )?;
    check(err.contains("cannot change roleRef"), || err.clone())?;
    // Kubernetes' validation: verbs required; Role may not name URLs;
    // ClusterRoleBinding refs only ClusterRoles; ServiceAccounts need a
    // namespace in a ClusterRoleBinding.
    let bad_role = role_yaml("bad", Some("rbac-gen"), "- apiGroups: [\"\"]\n  resources: [\"pods\"]\n  verbs: []\n- nonResourceURLs: [\"/x\"]\n  verbs: [\"get\"]\n");
    let err = r.fails(None, &["create", "-f", "-"], Some(&bad_role))?;
    check(
        err.contains("rules[0].verbs: Required value")
            && err.contains("namespaced rules cannot apply to non-resource URLs"),
        || err.clone(),
    )?;
    let bad_crb = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: bad\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: x\nsubjects:\n- kind: ServiceAccount\n  name: sa\n";
    let err = r.fails(None, &["create", "-f", "-"], Some(bad_crb))?;
    check(
        err.contains("roleRef.kind: Unsupported value: \"Role\"")
            && err.contains("subjects[0].namespace: Required value"),
        || err.clone(),
    )?;
    // OpenAPI: explain and strict field validation know the kinds.
    let ex = r.admin(&["explain", "clusterrole.rules"], None)?;
    check(
        ex.contains("verbs") && ex.contains("nonResourceURLs"),
        || ex.clone(),
    )?;
    let ex = r.admin(&["explain", "rolebinding.roleRef"], None)?;
    check(ex.contains("apiGroup"), || ex.clone())?;
    let unknown = role_yaml(
        "strict",
        Some("rbac-gen"),
        "- apiGroups: [\"\"]\n  resources: [\"pods\"]\n  verbs: [\"get\"]\n  bogus: 1\n",
    );
    let err = r.fails(
        None,
        &["apply", "--validate=strict", "-f", "-"],
        Some(&unknown),
    )?;
    check(err.contains("bogus"), || err.clone())?;
    // Names are path segments, as in Kubernetes.
    r.admin(
        &[
            "create",
            "clusterrole",
            "rbac:colon-name",
            "--verb=get",
            "--resource=pods",
        ],
        None,
    )?;
    let t = r.admin(&["get", "clusterroles"], None)?;
    check(
        t.contains("rbac:colon-name") && t.contains("cluster-admin"),
        || t.clone(),
    )?;
    Ok(())
}
