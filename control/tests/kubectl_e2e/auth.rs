//! Who may call: health is public, the API needs credentials (a wrong
//! token is Unauthorized, a node's token is the node), `auth can-i` and
//! `auth whoami` answer as real requests would, and /metrics counts
//! requests for admins only.

use std::path::Path;

use libtest_mimic::Failed;

use crate::clients::*;
use crate::manifests::*;
use crate::support::*;

pub fn health_is_public_and_api_needs_credentials(s: &Suite) -> Result<(), Failed> {
    for path in ["/healthz", "/livez", "/readyz"] {
        let (code, body) = curl(s, None, "GET", path, None)?;
        check(code == 200 && body == "ok", || {
            format!("{path}: {code} {body}")
        })?;
    }
    let (code, body) = curl(s, None, "GET", "/api/v1/namespaces/default/pods", None)?;
    check(code == 401, || format!("anonymous list: {code} {body}"))?;
    let status = json(&body)?;
    check(
        status["kind"] == "Status" && status["reason"] == "Unauthorized",
        || format!("{status}"),
    )?;
    // kubectl with a kubeconfig that holds only the CA and a wrong token
    // (with no credentials at all kubectl would prompt for a password).
    let bad = s.lab().dir().join("bad-token.kubeconfig");
    let admin = std::fs::read_to_string(s.admin_kubeconfig()).map_err(|e| e.to_string())?;
    let mut kc: serde_yaml::Value = serde_yaml::from_str(&admin).map_err(|e| e.to_string())?;
    let mut user = serde_yaml::Mapping::new();
    user.insert("token".into(), "not-a-token".into());
    kc["users"][0]["user"] = serde_yaml::Value::Mapping(user);
    std::fs::write(&bad, serde_yaml::to_string(&kc).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let err = kubectl_err(s, &bad, &["get", "pods", "-n", NS], None)?;
    check(err.contains("Unauthorized"), || err.clone())?;
    // The node's token from the token file works like its certificate.
    ensure_nodes(s)?;
    let tokens =
        std::fs::read_to_string(s.cp().pki_dir().join("tokens.csv")).map_err(|e| e.to_string())?;
    let token = tokens
        .lines()
        .find(|l| l.contains(",system:node:node-1,"))
        .and_then(|l| l.split(',').next())
        .ok_or("no token for node-1")?;
    kc["users"][0]["user"]["token"] = token.into();
    std::fs::write(&bad, serde_yaml::to_string(&kc).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let err = kubectl_err(s, &bad, &["label", "node", "node-2", "by-token=yes"], None)?;
    check(
        err.contains("system:node:node-1") && err.contains("orbidden"),
        || err.clone(),
    )?;
    let out = kubectl_as(s, &bad, &["get", "nodes"], None)?;
    check(out.status.success(), || {
        format!("node token: {}", text(&out.stderr))
    })?;
    Ok(())
}

/// `kubectl auth can-i` (a SelfSubjectAccessReview) gets the answer the
/// request itself would get; `auth whoami` (a SelfSubjectReview) names the
/// caller; a malformed review is a Status, 400 or 422.
pub fn auth_can_i_and_whoami(s: &Suite) -> Result<(), Failed> {
    let admin = s.admin_kubeconfig();
    let n1 = s.node_kubeconfig("node-1");
    let can_i = |kc: &Path, args: &[&str]| -> Result<(String, Option<i32>), Failed> {
        let mut all = vec!["auth", "can-i"];
        all.extend_from_slice(args);
        let out = kubectl_as(s, kc, &all, None)?;
        if !matches!(out.status.code(), Some(0 | 1)) || out.stdout.is_empty() {
            return Err(format!("kubectl {all:?}: {}", text(&out.stderr)).into());
        }
        Ok((text(&out.stdout).trim().to_string(), out.status.code()))
    };
    let r = can_i(&admin, &["create", "pods"])?;
    check(r == ("yes".into(), Some(0)), || {
        format!("admin create pods: {r:?}")
    })?;
    // kubectl prints the review's reason after the "no".
    let r = can_i(&n1, &["update", "nodes/node-2"])?;
    check(
        r.0 == "no - node 'node-1' cannot modify node 'node-2'" && r.1 == Some(1),
        || format!("node-1 on node-2: {r:?}"),
    )?;
    let r = can_i(&n1, &["update", "nodes/node-1"])?;
    check(r == ("yes".into(), Some(0)), || {
        format!("node-1 on itself: {r:?}")
    })?;
    let r = can_i(&n1, &["create", "configmaps", "-n", NS])?;
    check(r.0.starts_with("no - ") && r.1 == Some(1), || {
        format!("node-1 configmaps: {r:?}")
    })?;
    // Reads: open to nodes, except secrets and configmaps, which only
    // their pods' references unlock (the same rule as a real request).
    let r = can_i(&n1, &["list", "pods", "-A"])?;
    check(r == ("yes".into(), Some(0)), || {
        format!("node-1 reads pods: {r:?}")
    })?;
    let r = can_i(&n1, &["list", "secrets", "-A"])?;
    check(r.0.starts_with("no") && r.1 == Some(1), || {
        format!("node-1 lists secrets: {r:?}")
    })?;
    let r = can_i(&n1, &["get", "secrets/nobody-uses-this", "-n", NS])?;
    check(r.0.starts_with("no") && r.1 == Some(1), || {
        format!("node-1 gets an unreferenced secret: {r:?}")
    })?;
    // --list: everything for the admin; for a node an incomplete list.
    let out = kubectl_as(s, &admin, &["auth", "can-i", "--list"], None)?;
    check(
        out.status.success() && text(&out.stdout).contains("*.*"),
        || format!("admin --list: {} {}", text(&out.stdout), text(&out.stderr)),
    )?;
    let who = json(&kubectl_ok(s, &["auth", "whoami", "-o", "json"])?)?;
    let groups = who["status"]["userInfo"]["groups"].clone();
    check(
        who["kind"] == "SelfSubjectReview"
            && who["status"]["userInfo"]["username"] == "admin"
            && groups.as_array().is_some_and(|g| {
                g.iter().any(|x| x == "system:masters")
                    && g.iter().any(|x| x == "system:authenticated")
            }),
        || format!("admin whoami: {who}"),
    )?;
    // A token (which beats the certificate) carries the token file's uid.
    let tokens = std::fs::read_to_string(s.cp().pki_dir().join("tokens.csv"))?;
    let (token, uid) = tokens
        .lines()
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|f| f.len() >= 3 && f[1] == "admin")
        .map(|f| (f[0].to_string(), f[2].to_string()))
        .ok_or("no admin token in tokens.csv")?;
    let who = json(&kubectl_ok(
        s,
        &["auth", "whoami", "-o", "json", &format!("--token={token}")],
    )?)?;
    check(who["status"]["userInfo"]["uid"] == uid.as_str(), || {
        format!("token whoami: {who}")
    })?;
    let out = kubectl_as(s, &n1, &["auth", "whoami"], None)?;
    let table = text(&out.stdout);
    check(
        out.status.success()
            && table.contains("system:node:node-1")
            && table.contains("system:nodes"),
        || format!("node whoami: {table} {}", text(&out.stderr)),
    )?;
    let path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    let (code, body) = curl(
        s,
        Some("admin"),
        "POST",
        path,
        Some(("application/json", r#"{"spec":"nope"}"#)),
    )?;
    check(code == 400 && json(&body)?["kind"] == "Status", || {
        format!("{code} {body}")
    })?;
    let (code, body) = curl(
        s,
        Some("admin"),
        "POST",
        path,
        Some(("application/json", r#"{"spec":{}}"#)),
    )?;
    check(code == 422 && json(&body)?["reason"] == "Invalid", || {
        format!("{code} {body}")
    })?;
    let (code, body) = curl(s, Some("admin"), "GET", path, None)?;
    check(code == 405, || format!("{code} {body}"))?;
    let (code, body) = curl(s, None, "POST", path, Some(("application/json", "{}")))?;
    check(code == 401, || format!("{code} {body}"))?;
    Ok(())
}

pub fn metrics_count_requests(s: &Suite) -> Result<(), Failed> {
    // Its own requests to count, so it also passes when run alone.
    kubectl_ok(s, &["get", "configmaps", "-n", NS])?;
    let (code, _) = curl(s, None, "GET", "/api/v1/pods", None)?;
    check(code == 401, || format!("anonymous: {code}"))?;
    let (code, body) = curl(s, Some("admin"), "GET", "/metrics", None)?;
    check(code == 200, || format!("{code} {body}"))?;
    check(
        body.contains(
            r#"capstan_apiserver_requests_total{verb="list",resource="configmaps",code="200"}"#,
        ),
        || body.clone(),
    )?;
    check(body.contains(r#"code="401""#), || "401s are counted".into())?;
    let (code, _) = curl(s, Some("node-node-1"), "GET", "/metrics", None)?;
    check(code == 403, || format!("node reads /metrics: {code}"))?;
    Ok(())
}
