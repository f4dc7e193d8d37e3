//! Service-account tokens against the real server and kubectl:
//! `kubectl create token` gives a token the API takes as the service
//! account (authenticated: 403, not 401, where it may not act), refused
//! with 401 for another audience, after expiry, once its bound pod or its
//! service account is gone; TokenReview agrees with the request path; a
//! node gets tokens only for its own pods' accounts (the kubelet's kube-rs
//! call); bad TokenRequests are Status answers.

use std::time::Duration;

use capstan_apiserver::auth::service_account::claims::ObjectRef;
use capstan_apiserver::auth::service_account::issuer::{Binding, TokenSpec};
use capstan_apiserver::auth::service_account::{self as sa, IssuerOptions, TokenIssuer};
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use libtest_mimic::Failed;
use serde_json::{json, Value};

use crate::clients::*;
use crate::manifests::*;
use crate::support::*;

const API_AUDIENCE: &str = sa::DEFAULT_ISSUER;
/// Covers the authenticator's 2 s cache of objects found, with room for
/// a loaded machine.
const GONE_WITHIN: Duration = Duration::from_secs(30);

fn sa_yaml(name: &str) -> String {
    format!("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {name}\n  namespace: {NS}\n")
}

fn sa_pod_yaml(name: &str, account: &str, node: Option<&str>) -> String {
    let node = node
        .map(|n| format!("  nodeName: {n}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n{node}  serviceAccountName: {account}\n  containers:\n  - name: main\n    image: capstan.test/testsrv:latest\n"
    )
}

fn uid(s: &Suite, kind: &str, name: &str) -> Result<String, Failed> {
    get_path(s, kind, name, NS, "{.metadata.uid}")
}

/// `kubectl create token` as the admin.
fn create_token(s: &Suite, args: &[&str]) -> Result<String, Failed> {
    let mut all = vec!["create", "token", "-n", NS];
    all.extend_from_slice(args);
    Ok(kubectl_ok(s, &all)?.trim().to_string())
}

/// The token's claims (its middle part), unverified.
fn payload(token: &str) -> Result<Value, Failed> {
    use base64::Engine;
    let part = token.split('.').nth(1).ok_or("not a JWT")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| format!("payload: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("payload JSON: {e}").into())
}

/// (code, body) of a GET with `token` as the only credential.
fn get_with(s: &Suite, token: &str, path: &str) -> Result<(u16, String), Failed> {
    curl(s, Some(&format!("token:{token}")), "GET", path, None)
}

fn code_with(s: &Suite, token: &str, path: &str) -> Result<u16, Failed> {
    Ok(get_with(s, token, path)?.0)
}

/// An authenticated request the service account may not make.
fn pods_path() -> String {
    format!("/api/v1/namespaces/{NS}/pods")
}

/// The admin's TokenReview of `token`: its status.
fn review(s: &Suite, token: &str, audiences: &[&str]) -> Result<Value, Failed> {
    let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                      "spec": {"token": token, "audiences": audiences}});
    let (code, out) = curl(
        s,
        Some("admin"),
        "POST",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        Some(("application/json", &body.to_string())),
    )?;
    check(code == 201, || format!("review: {code} {out}"))?;
    Ok(json(&out)?["status"].clone())
}

fn token_path(account: &str) -> String {
    format!("/api/v1/namespaces/{NS}/serviceaccounts/{account}/token")
}

pub fn service_account_tokens_authenticate(s: &Suite) -> Result<(), Failed> {
    create(s, &sa_yaml("tok-user"))?;
    let sa_uid = uid(s, "serviceaccount", "tok-user")?;
    let t = create_token(s, &["tok-user", "--duration=10m"])?;
    let c = payload(&t)?;
    let user = format!("system:serviceaccount:{NS}:tok-user");
    check(
        c["iss"] == API_AUDIENCE
            && c["sub"] == user.as_str()
            && c["aud"] == json!([API_AUDIENCE])
            && c["exp"].as_i64().zip(c["iat"].as_i64()).map(|(e, i)| e - i) == Some(600)
            && c["nbf"] == c["iat"]
            && c["jti"].as_str().is_some_and(|j| !j.is_empty())
            && c["kubernetes.io"]["namespace"] == NS
            && c["kubernetes.io"]["serviceaccount"] == json!({"name": "tok-user", "uid": sa_uid}),
        || format!("claims: {c}"),
    )?;
    // Authenticated: the API answers, and a request the account may not
    // make is 403 (authorization), not 401 (authentication).
    let (code, body) = get_with(s, &t, "/api")?;
    check(code == 200 && body.contains("APIVersions"), || {
        format!("/api: {code} {body}")
    })?;
    let (code, body) = get_with(s, &t, &pods_path())?;
    check(
        code == 403 && json(&body)?["reason"] == "Forbidden" && body.contains(&user),
        || format!("pods: {code} {body}"),
    )?;
    let who = json(&kubectl_ok(
        s,
        &["auth", "whoami", "-o", "json", &format!("--token={t}")],
    )?)?;
    let info = &who["status"]["userInfo"];
    check(
        info["username"] == user.as_str()
            && info["uid"] == sa_uid.as_str()
            && info["groups"]
                == json!([
                    "system:serviceaccounts",
                    format!("system:serviceaccounts:{NS}"),
                    "system:authenticated"
                ]),
        || format!("whoami: {who}"),
    )?;
    // TokenReview says what the request path said.
    let r = review(s, &t, &[])?;
    check(
        r["authenticated"] == true
            && r["user"]["username"] == info["username"]
            && r["user"]["uid"] == info["uid"]
            && r["user"]["groups"] == info["groups"]
            && r["audiences"] == json!([API_AUDIENCE]),
        || format!("review: {r}"),
    )?;
    // Another audience: refused by the API, good for that audience only.
    let other = create_token(s, &["tok-user", "--audience=other", "--duration=10m"])?;
    check(payload(&other)?["aud"] == json!(["other"]), || {
        "aud other".into()
    })?;
    let (code, body) = get_with(s, &other, "/api")?;
    check(
        code == 401 && json(&body)?["reason"] == "Unauthorized",
        || format!("wrong audience: {code} {body}"),
    )?;
    check(code_with(s, &other, &pods_path())? == 401, || {
        "wrong audience, pods".into()
    })?;
    let err = kubectl_err(
        s,
        &s.admin_kubeconfig(),
        &["get", "pods", "-n", NS, &format!("--token={other}")],
        None,
    )?;
    check(err.contains("Unauthorized"), || err.clone())?;
    let r = review(s, &other, &[])?;
    check(
        r["authenticated"] == false
            && r["error"]
                .as_str()
                .is_some_and(|e| e.contains("is invalid for the target audiences")),
        || format!("review of the wrong audience: {r}"),
    )?;
    let r = review(s, &other, &["other"])?;
    check(
        r["authenticated"] == true && r["audiences"] == json!(["other"]),
        || format!("review for audience other: {r}"),
    )?;
    // A forged token (our claims, not our signature) and garbage: 401.
    let mut parts: Vec<&str> = t.split('.').collect();
    let forged = other.split('.').nth(2).unwrap_or_default().to_string();
    parts[2] = &forged;
    check(code_with(s, &parts.join("."), "/api")? == 401, || {
        "forged signature".into()
    })?;
    check(code_with(s, "garbage", "/api")? == 401, || "garbage".into())?;
    // The account deleted: its tokens die with it.
    kubectl_ok(s, &["delete", "serviceaccount", "tok-user", "-n", NS])?;
    capstan_lab::wait::wait_until(
        "token refused after its account is deleted",
        GONE_WITHIN,
        || code_with(s, &t, "/api").is_ok_and(|c| c == 401),
    )?;
    let r = review(s, &t, &[])?;
    check(r["authenticated"] == false, || format!("{r}"))?;
    // A new account of the same name is another account (another uid).
    create(s, &sa_yaml("tok-user"))?;
    check(code_with(s, &t, "/api")? == 401, || {
        "token of the old account".into()
    })?;
    let r = review(s, &t, &[])?;
    check(
        r["error"]
            .as_str()
            .is_some_and(|e| e.contains("does not match claim")),
        || format!("recreated account: {r}"),
    )?;
    Ok(())
}

pub fn bound_token_dies_with_its_pod(s: &Suite) -> Result<(), Failed> {
    create(s, &sa_yaml("tok-bound"))?;
    create(s, &sa_pod_yaml("tok-bound-pod", "tok-bound", None))?;
    create(s, &sa_yaml("tok-other"))?;
    create(s, &sa_pod_yaml("tok-other-sa-pod", "tok-other", None))?;
    let pod_uid = uid(s, "pod", "tok-bound-pod")?;
    let t = create_token(
        s,
        &[
            "tok-bound",
            "--bound-object-kind",
            "Pod",
            "--bound-object-name",
            "tok-bound-pod",
        ],
    )?;
    let c = payload(&t)?;
    check(
        c["kubernetes.io"]["pod"] == json!({"name": "tok-bound-pod", "uid": pod_uid})
            && c["exp"].as_i64().zip(c["iat"].as_i64()).map(|(e, i)| e - i) == Some(3600),
        || format!("claims: {c}"),
    )?;
    check(code_with(s, &t, "/api")? == 200, || "bound token".into())?;
    let r = review(s, &t, &[])?;
    check(
        r["user"]["extra"]["authentication.kubernetes.io/pod-name"] == json!(["tok-bound-pod"])
            && r["user"]["extra"]["authentication.kubernetes.io/pod-uid"] == json!([pod_uid]),
        || format!("review extra: {r}"),
    )?;
    // A pod that runs as another account cannot carry this one's token.
    let out = kubectl(
        s,
        &[
            "create",
            "token",
            "tok-bound",
            "-n",
            NS,
            "--bound-object-kind",
            "Pod",
            "--bound-object-name",
            "tok-other-sa-pod",
        ],
        None,
    )?;
    let err = text(&out.stderr);
    check(
        !out.status.success() && err.contains("to pod running with different serviceaccount name"),
        || err.clone(),
    )?;
    kubectl_ok(
        s,
        &[
            "delete",
            "pod",
            "tok-bound-pod",
            "-n",
            NS,
            "--grace-period=0",
            "--force",
        ],
    )?;
    capstan_lab::wait::wait_until(
        "token refused after its pod is deleted",
        GONE_WITHIN,
        || code_with(s, &t, "/api").is_ok_and(|c| c == 401),
    )?;
    let (code, body) = get_with(s, &t, &pods_path())?;
    check(code == 401, || format!("pods after delete: {code} {body}"))?;
    let r = review(s, &t, &[])?;
    check(
        r["authenticated"] == false && r["error"] == "service account token has been invalidated",
        || format!("review after delete: {r}"),
    )?;
    // Nothing to bind to any more.
    let out = kubectl(
        s,
        &[
            "create",
            "token",
            "tok-bound",
            "-n",
            NS,
            "--bound-object-kind",
            "Pod",
            "--bound-object-name",
            "tok-bound-pod",
        ],
        None,
    )?;
    let err = text(&out.stderr);
    check(!out.status.success() && err.contains("not found"), || {
        err.clone()
    })?;
    Ok(())
}

/// Tokens signed with the server's own key (from the pki dir, through the
/// signing function the server uses) but outside their lifetime.
pub fn expired_tokens_are_refused(s: &Suite) -> Result<(), Failed> {
    create(s, &sa_yaml("tok-exp"))?;
    let sa_uid = uid(s, "serviceaccount", "tok-exp")?;
    let key_path = s.cp().pki_dir().join("sa.key");
    let key = sa::load_signing_key(&key_path).map_err(|e| e.to_string())?;
    let issuer = TokenIssuer::new(
        key,
        IssuerOptions {
            issuer: sa::DEFAULT_ISSUER.into(),
            api_audiences: vec![API_AUDIENCE.into()],
            max_expiration_seconds: None,
            extend_expiration: false,
        },
    );
    let signed = |now: i64, lifetime: i64| -> Result<String, Failed> {
        let claims = issuer.claims(TokenSpec {
            namespace: NS,
            service_account: ObjectRef {
                name: "tok-exp".into(),
                uid: sa_uid.clone(),
            },
            binding: Binding::default(),
            audiences: vec![API_AUDIENCE.into()],
            lifetime,
            warn_after: None,
            now,
            jti: format!("test-{now}"),
        });
        issuer.sign(&claims).map_err(|e| e.to_string().into())
    };
    let now = sa::now();
    // The control: the same signing, in its lifetime, is accepted.
    let fresh = signed(now, 600)?;
    check(code_with(s, &fresh, "/api")? == 200, || {
        "a token signed here is accepted".into()
    })?;
    // Expired an hour ago (far past the 60 s leeway).
    let expired = signed(now - 7200, 3600)?;
    let (code, body) = get_with(s, &expired, "/api")?;
    check(
        code == 401 && json(&body)?["reason"] == "Unauthorized",
        || format!("expired: {code} {body}"),
    )?;
    let r = review(s, &expired, &[])?;
    check(
        r["authenticated"] == false && r["error"] == "service account token has expired",
        || format!("review of the expired token: {r}"),
    )?;
    // Not valid for another hour.
    let early = signed(now + 3600, 600)?;
    check(code_with(s, &early, "/api")? == 401, || {
        "not yet valid".into()
    })?;
    let r = review(s, &early, &[])?;
    check(
        r["error"] == "service account token is not valid yet",
        || format!("review of the early token: {r}"),
    )?;
    Ok(())
}

/// The kubelet's call: kube-rs `create_subresource("token")` with the
/// node's credentials, bound to a pod on that node, 3607 s, no audiences.
fn node_token_request(pod: &str, uid: Option<&str>) -> TokenRequest {
    TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(3607),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(pod.into()),
                uid: uid.map(str::to_string),
            }),
        },
        ..Default::default()
    }
}

pub fn nodes_get_tokens_only_for_their_pods(s: &Suite) -> Result<(), Failed> {
    ensure_nodes(s)?;
    create(s, &sa_yaml("tok-node"))?;
    create(s, &sa_yaml("tok-node-unused"))?;
    create(s, &sa_pod_yaml("tok-node-mine", "tok-node", Some("node-1")))?;
    create(
        s,
        &sa_pod_yaml("tok-node-theirs", "tok-node", Some("node-2")),
    )?;
    let mine = uid(s, "pod", "tok-node-mine")?;
    let theirs = uid(s, "pod", "tok-node-theirs")?;
    let result = node_tokens(s, &mine, &theirs);
    for p in ["tok-node-mine", "tok-node-theirs"] {
        let _ = kubectl(
            s,
            &["delete", "pod", p, "-n", NS, "--grace-period=0", "--force"],
            None,
        );
    }
    result
}

fn node_tokens(s: &Suite, mine: &str, theirs: &str) -> Result<(), Failed> {
    let uid_mine = mine.to_string();
    let (mine, theirs) = (mine.to_string(), theirs.to_string());
    let n1 = s.node_kubeconfig("node-1");
    let token = with_kube(s, n1.clone(), move |client| {
        Box::pin(async move {
            let sas: Api<ServiceAccount> = Api::namespaced(client, NS);
            let ask = |account: &'static str, tr: TokenRequest| {
                let sas = sas.clone();
                async move {
                    sas.create_subresource::<_, TokenRequest>(
                        "token",
                        account,
                        &PostParams::default(),
                        &tr,
                    )
                    .await
                }
            };
            let issued = ask("tok-node", node_token_request("tok-node-mine", Some(&mine)))
                .await
                .map_err(|e| format!("node-1's token for its pod: {e}"))?;
            check(
                issued.spec.audiences == [API_AUDIENCE]
                    && issued.spec.expiration_seconds == Some(3607),
                || format!("spec: {:?}", issued.spec),
            )?;
            let token: String = issued
                .status
                .map(|st| st.token)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| Failed::from("no token in the status"))?;
            let forbidden = |r: Result<TokenRequest, kube::Error>, want: &str| match r {
                Err(kube::Error::Api(e)) if e.code == 403 && e.message.contains(want) => Ok(()),
                other => Err(Failed::from(format!("want 403 {want:?}: {other:?}"))),
            };
            forbidden(
                ask(
                    "tok-node",
                    node_token_request("tok-node-theirs", Some(&theirs)),
                )
                .await,
                "node requested token bound to a pod scheduled on a different node",
            )?;
            forbidden(
                ask("tok-node", node_token_request("tok-node-mine", None)).await,
                "node requested token with a pod binding without a uid",
            )?;
            forbidden(
                ask("tok-node", TokenRequest::default()).await,
                "node requested token not bound to a pod",
            )?;
            forbidden(
                ask(
                    "tok-node-unused",
                    node_token_request("tok-node-mine", Some(&mine)),
                )
                .await,
                "no relationship found between node 'node-1' and this object",
            )?;
            // It reads the accounts its pods run as, and no other.
            check(api_code(sas.get("tok-node").await)? == 200, || {
                "node-1 gets tok-node".into()
            })?;
            check(api_code(sas.get("tok-node-unused").await)? == 403, || {
                "node-1 gets tok-node-unused".into()
            })?;
            Ok(token)
        })
    })?;
    // The legacy 3607 s request lives a year and says when to warn, as
    // kube-apiserver's --service-account-extend-token-expiration does.
    let c = payload(&token)?;
    let iat = c["iat"].as_i64().ok_or("no iat")?;
    check(
        c["exp"].as_i64() == Some(iat + 365 * 24 * 3600)
            && c["kubernetes.io"]["warnafter"].as_i64() == Some(iat + 3607)
            && c["kubernetes.io"]["pod"]["name"] == "tok-node-mine"
            && c["kubernetes.io"]["node"]["name"] == "node-1",
        || format!("claims: {c}"),
    )?;
    let who = json(&kubectl_ok(
        s,
        &["auth", "whoami", "-o", "json", &format!("--token={token}")],
    )?)?;
    check(
        who["status"]["userInfo"]["username"]
            == format!("system:serviceaccount:{NS}:tok-node").as_str(),
        || format!("whoami: {who}"),
    )?;
    // kubectl as the node, with the uid NodeRestriction wants.
    let out = kubectl_as(
        s,
        &n1,
        &[
            "create",
            "token",
            "tok-node",
            "-n",
            NS,
            "--bound-object-kind",
            "Pod",
            "--bound-object-name",
            "tok-node-mine",
            &format!("--bound-object-uid={uid_mine}"),
        ],
        None,
    )?;
    check(out.status.success(), || text(&out.stderr))?;
    // node-2 may not get tokens for node-1's pod; nor review tokens.
    let n2 = s.node_kubeconfig("node-2");
    let err = kubectl_err(
        s,
        &n2,
        &[
            "create",
            "token",
            "tok-node",
            "-n",
            NS,
            "--bound-object-kind",
            "Pod",
            "--bound-object-name",
            "tok-node-mine",
            &format!("--bound-object-uid={uid_mine}"),
        ],
        None,
    )?;
    check(err.contains("scheduled on a different node"), || {
        err.clone()
    })?;
    let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}});
    let (code, out) = curl(
        s,
        Some("node-node-1"),
        "POST",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        Some(("application/json", &body.to_string())),
    )?;
    check(code == 403 && json(&out)?["reason"] == "Forbidden", || {
        format!("node reviews a token: {code} {out}")
    })?;
    Ok(())
}

pub fn bad_token_requests_are_status(s: &Suite) -> Result<(), Failed> {
    create(s, &sa_yaml("tok-bad"))?;
    create(s, &secret_yaml("tok-bad-secret"))?;
    let post = |account: &str, body: &str| {
        curl(
            s,
            Some("admin"),
            "POST",
            &token_path(account),
            Some(("application/json", body)),
        )
    };
    let status = |code: u16, body: &str, want: u16, reason: &str| -> Result<Value, Failed> {
        let v = json(body)?;
        check(
            code == want && v["kind"] == "Status" && v["reason"] == reason,
            || format!("want {want} {reason}: {code} {body}"),
        )?;
        Ok(v)
    };
    let (c, b) = post("tok-bad", r#"{"spec":{"expirationSeconds":"ten"}}"#)?;
    status(c, &b, 400, "BadRequest")?;
    let (c, b) = post("tok-bad", r#"{"apiVersion":"v1","kind":"Pod"}"#)?;
    status(c, &b, 400, "BadRequest")?;
    let (c, b) = post("tok-bad", r#"{"spec":{"expirationSeconds":599}}"#)?;
    let v = status(c, &b, 422, "Invalid")?;
    check(
        v["details"]["kind"] == "TokenRequest"
            && v["details"]["group"] == "authentication.k8s.io"
            && v["details"]["causes"][0]["field"] == "spec.expirationSeconds"
            && v["message"]
                .as_str()
                .is_some_and(|m| m.contains("may not specify a duration less than 10 minutes")),
        || format!("{v}"),
    )?;
    let (c, b) = post("tok-bad", r#"{"spec":{"expirationSeconds":4294967297}}"#)?;
    status(c, &b, 422, "Invalid")?;
    let (c, b) = post("tok-bad", r#"{"metadata":{"name":"other"}}"#)?;
    let v = status(c, &b, 422, "Invalid")?;
    check(
        v["details"]["causes"][0]["field"] == "metadata.name",
        || format!("{v}"),
    )?;
    let (c, b) = post(
        "tok-bad",
        r#"{"spec":{"boundObjectRef":{"kind":"Deployment","apiVersion":"apps/v1","name":"d"}}}"#,
    )?;
    status(c, &b, 400, "BadRequest")?;
    let (c, b) = post(
        "tok-bad",
        r#"{"spec":{"boundObjectRef":{"kind":"Pod","apiVersion":"v1","name":"no-such-pod"}}}"#,
    )?;
    status(c, &b, 404, "NotFound")?;
    let (c, b) = post(
        "tok-bad",
        r#"{"spec":{"boundObjectRef":{"kind":"Secret","apiVersion":"v1","name":"tok-bad-secret","uid":"not-its-uid"}}}"#,
    )?;
    status(c, &b, 409, "Conflict")?;
    let (c, b) = post("no-such-account", "{}")?;
    status(c, &b, 404, "NotFound")?;
    let (c, b) = curl(s, Some("admin"), "GET", &token_path("tok-bad"), None)?;
    status(c, &b, 405, "MethodNotAllowed")?;
    // A good body bound to the secret works, with the secret in the claims.
    let (c, b) = post(
        "tok-bad",
        r#"{"spec":{"boundObjectRef":{"kind":"Secret","apiVersion":"v1","name":"tok-bad-secret"}}}"#,
    )?;
    check(c == 201, || format!("bound to a secret: {c} {b}"))?;
    let token = json(&b)?["status"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    check(
        payload(&token)?["kubernetes.io"]["secret"]["name"] == "tok-bad-secret",
        || b.clone(),
    )?;
    // kubectl shows the server's reason.
    let out = kubectl(
        s,
        &["create", "token", "tok-bad", "-n", NS, "--duration=5m"],
        None,
    )?;
    let err = text(&out.stderr);
    check(
        !out.status.success() && err.contains("may not specify a duration less than 10 minutes"),
        || err.clone(),
    )?;
    // A TokenReview without a token.
    let (c, b) = curl(
        s,
        Some("admin"),
        "POST",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        Some(("application/json", r#"{"spec":{}}"#)),
    )?;
    let v = status(c, &b, 400, "BadRequest")?;
    check(
        v["message"] == "token is required for TokenReview in authentication",
        || format!("{v}"),
    )?;
    Ok(())
}
