//! Impersonation (`kubectl --as`): refused (403) without the
//! `impersonate` verb on the user, group or service account asked for;
//! with it, the request runs as the impersonated identity.

use libtest_mimic::Failed;

use crate::support::*;

pub fn impersonation_needs_the_impersonate_verb(r: &Rbac) -> Result<(), Failed> {
    let u = "rbac-imp";
    let err = r.fails(Some(u), &["get", "pods", "--as=imp-target"], None)?;
    check(
        err.contains(&format!(
            "users \"imp-target\" is forbidden: User \"{u}\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
        )),
        || err.clone(),
    )?;
    let err = r.fails(
        Some(u),
        &[
            "get",
            "pods",
            "--as=system:serviceaccount:capstan-system:capstan",
        ],
        None,
    )?;
    check(
        err.contains(&format!(
            "serviceaccounts \"capstan\" is forbidden: User \"{u}\" cannot impersonate resource \"serviceaccounts\" in API group \"\" in the namespace \"capstan-system\""
        )),
        || err.clone(),
    )?;
    // Groups without a user make no sense (400), as in Kubernetes.
    let (code, body) = raw(r, u, &["Impersonate-Group: g"])?;
    check(code == 400, || format!("{code} {body}"))?;
    // Allowed to impersonate one user (by name) and one group.
    let rules = "- apiGroups: [\"\"]\n  resources: [\"users\"]\n  verbs: [\"impersonate\"]\n  resourceNames: [\"imp-target\"]\n\
                 - apiGroups: [\"\"]\n  resources: [\"groups\"]\n  verbs: [\"impersonate\"]\n  resourceNames: [\"imp-group\"]\n";
    r.admin(
        &["apply", "-f", "-"],
        Some(&role_yaml("rbac-imp", None, rules)),
    )?;
    r.admin(
        &["apply", "-f", "-"],
        Some(&binding_yaml(
            "rbac-imp",
            None,
            "ClusterRole",
            "rbac-imp",
            u,
        )),
    )?;
    r.wait_can_i(Some(u), &["impersonate", "users/imp-target"], true)?;
    let who = json(&r.ok(
        u,
        &[
            "auth",
            "whoami",
            "-o",
            "json",
            "--as=imp-target",
            "--as-group=imp-group",
        ],
        None,
    )?)?;
    check(
        who["status"]["userInfo"]["username"] == "imp-target"
            && who["status"]["userInfo"]["groups"]
                == serde_json::json!(["imp-group", "system:authenticated"]),
        || format!("{who}"),
    )?;
    // The impersonated user's own rights apply, not the caller's.
    check(
        !r.can_i(
            Some(u),
            &["impersonate", "users/imp-target", "--as=imp-target"],
        )?,
        || "the target inherited the caller's impersonate grant".into(),
    )?;
    // Another user, or a group not granted: refused (`get`, as `whoami`
    // hides the server's message).
    let err = r.fails(Some(u), &["get", "pods", "--as=someone-else"], None)?;
    check(
        err.contains("cannot impersonate resource \"users\""),
        || err.clone(),
    )?;
    let err = r.fails(
        Some(u),
        &[
            "get",
            "pods",
            "--as=imp-target",
            "--as-group=system:masters",
        ],
        None,
    )?;
    check(
        err.contains("groups \"system:masters\" is forbidden")
            && err.contains("cannot impersonate resource \"groups\""),
        || err.clone(),
    )?;
    Ok(())
}

/// GET /api as `user` (its token from its kubeconfig) with extra headers,
/// through curl: the status code and body.
fn raw(r: &Rbac, user: &str, headers: &[&str]) -> Result<(u16, String), Failed> {
    let kc: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(r.kubeconfig(user))?)
        .map_err(|e| e.to_string())?;
    let token = kc["users"][0]["user"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (mut c, ca, server) = {
        let cp = r.s.cp();
        (cp.command("curl")?, cp.ca_cert(), cp.server())
    };
    c.args([
        "-s",
        "--max-time",
        "10",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "--cacert",
    ])
    .arg(ca)
    .args(["-H", &format!("Authorization: Bearer {token}")]);
    for h in headers {
        c.args(["-H", h]);
    }
    c.arg(format!("{server}/api"));
    let out = c.output()?;
    let all = text(&out.stdout);
    let (body, code) = all.rsplit_once('\n').unwrap_or(("", &all));
    Ok((code.trim().parse().unwrap_or(0), body.to_string()))
}
