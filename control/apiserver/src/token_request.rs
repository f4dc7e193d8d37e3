//! TokenRequest (`POST .../serviceaccounts/<name>/token`), as
//! kube-apiserver's `TokenREST` answers it: the request's defaults and
//! validation, NodeRestriction's rule for nodes (a node's token must be
//! bound to a pod scheduled on it), the bound object looked up (its uid
//! goes into the token), the lifetime capped or extended, then a token
//! signed by `TokenIssuer`. Nothing is stored. Authorization (`create
//! serviceaccounts/token`) has already happened.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::service_account::claims::ObjectRef;
use crate::auth::service_account::issuer::{
    Binding, TokenSpec, EXTENDED_EXPIRATION_SECONDS, KUBELET_LEGACY_EXPIRATION_SECONDS,
};
use crate::auth::service_account::{self as sa, TokenIssuer};
use crate::auth::User;
use crate::registry::meta;
use crate::status::{ApiError, Cause, Subject};
use crate::{resources, rest, ApiServer};

const GROUP: &str = "authentication.k8s.io";
const KIND: &str = "TokenRequest";
/// `spec.expirationSeconds` when the request leaves it out.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// Kubernetes refuses shorter tokens ("may not specify a duration less
/// than 10 minutes") and longer than 2^32 seconds.
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
pub const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

/// The parts of a TokenRequest body the server reads. Unknown fields are
/// ignored, as Kubernetes' decoder drops them; wrong types are a 400.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    spec: Spec,
}

#[derive(Debug, Default, Deserialize)]
struct Meta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    audiences: Option<Vec<String>>,
    #[serde(default)]
    expiration_seconds: Option<i64>,
    #[serde(default)]
    bound_object_ref: Option<BoundRef>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BoundRef {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    uid: Option<String>,
}

impl BoundRef {
    fn to_json(&self) -> Value {
        let mut v = serde_json::Map::new();
        for (k, f) in [
            ("kind", &self.kind),
            ("apiVersion", &self.api_version),
            ("name", &self.name),
            ("uid", &self.uid),
        ] {
            if let Some(x) = f.as_deref().filter(|x| !x.is_empty()) {
                v.insert(k.into(), json!(x));
            }
        }
        Value::Object(v)
    }
}

/// The answer: the TokenRequest with its status, and any warnings (a
/// shortened lifetime) for `Warning` headers.
pub struct Issued {
    pub body: Value,
    pub warnings: Vec<String>,
}

impl IntoResponse for Issued {
    fn into_response(self) -> Response {
        let mut r = (
            StatusCode::CREATED,
            [(header::CONTENT_TYPE, "application/json")],
            self.body.to_string(),
        )
            .into_response();
        for w in self.warnings {
            // RFC 7234 warn-code 299 ("miscellaneous persistent warning"),
            // the form Kubernetes' warnings take.
            let text = format!("299 - \"{}\"", w.replace('"', "'"));
            if let Ok(v) = HeaderValue::from_str(&text) {
                r.headers_mut().append(header::WARNING, v);
            }
        }
        r
    }
}

fn invalid(name: &str, cause: Cause) -> ApiError {
    ApiError::Invalid {
        subject: Subject {
            group: GROUP.into(),
            kind: KIND.into(),
            name: name.into(),
        },
        causes: vec![cause],
    }
}

fn decode(mut body: Value) -> Result<Body, ApiError> {
    let kind = body.get("kind").and_then(Value::as_str).unwrap_or(KIND);
    let api_version = body
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("authentication.k8s.io/v1");
    if kind != KIND || api_version != "authentication.k8s.io/v1" {
        return Err(ApiError::BadRequest(format!(
            "the body is a {api_version} {kind}, not an authentication.k8s.io/v1 TokenRequest"
        )));
    }
    // `null` is an absent field here, as in Go's decoder.
    if let Some(o) = body.as_object_mut() {
        o.retain(|_, v| !v.is_null());
    }
    serde_json::from_value(body).map_err(|e| {
        ApiError::BadRequest(format!(
            "error decoding the request body as TokenRequest: {e}"
        ))
    })
}

async fn get(
    api: &ApiServer,
    plural: &str,
    ns: Option<&str>,
    name: &str,
) -> Result<Value, ApiError> {
    let res = resources::find("", "v1", plural)
        .ok_or_else(|| ApiError::Internal(format!("{plural} missing from the resource table")))?;
    Ok(rest::get(api, res, ns, name).await?.value)
}

fn uid_of(v: &Value) -> String {
    v.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

/// A pod's service account; empty means `default`, as the ServiceAccount
/// admission would have set it.
pub fn pod_service_account(pod: &Value) -> &str {
    match str_at(pod, "/spec/serviceAccountName") {
        "" => "default",
        s => s,
    }
}

/// Issues a token for service account `name` in `ns` to `user`.
pub async fn create(
    api: &ApiServer,
    user: &User,
    ns: &str,
    name: &str,
    body: Value,
) -> Result<Issued, ApiError> {
    let issuer = api.token_issuer.as_deref().ok_or(ApiError::NoRoute)?;
    let req = decode(body)?;
    if req
        .metadata
        .name
        .as_deref()
        .is_some_and(|n| !n.is_empty() && n != name)
    {
        return Err(invalid(
            name,
            Cause::invalid(
                "metadata.name",
                req.metadata.name.as_deref().unwrap_or_default(),
                "must match the service account name if specified",
            ),
        ));
    }
    if req
        .metadata
        .namespace
        .as_deref()
        .is_some_and(|n| !n.is_empty() && n != ns)
    {
        return Err(invalid(
            name,
            Cause::invalid(
                "metadata.namespace",
                req.metadata.namespace.as_deref().unwrap_or_default(),
                "must match the service account namespace if specified",
            ),
        ));
    }
    let account = get(api, "serviceaccounts", Some(ns), name).await?;
    let now = sa::now();
    let audiences = match req.spec.audiences.clone() {
        Some(a) if !a.is_empty() => a,
        _ => issuer.options.api_audiences.clone(),
    };
    let mut expiration = req
        .spec
        .expiration_seconds
        .unwrap_or(DEFAULT_EXPIRATION_SECONDS);
    if expiration < MIN_EXPIRATION_SECONDS {
        return Err(invalid(
            "",
            Cause::invalid(
                "spec.expirationSeconds",
                expiration,
                "may not specify a duration less than 10 minutes",
            ),
        ));
    }
    if expiration > MAX_EXPIRATION_SECONDS {
        return Err(invalid(
            "",
            Cause::invalid(
                "spec.expirationSeconds",
                expiration,
                "may not specify a duration larger than 2^32 seconds",
            ),
        ));
    }
    let bound = req.spec.bound_object_ref.clone();
    if let Some(node) = user.node_name() {
        admit_node(api, node, ns, name, bound.as_ref()).await?;
    }
    let binding = match &bound {
        Some(r) => bind(api, ns, name, r).await?,
        None => Binding::default(),
    };
    let mut warnings = Vec::new();
    if let Some(max) = issuer.options.max_expiration_seconds {
        if expiration > max {
            warnings.push(format!(
                "requested expiration of {expiration} seconds shortened to {max} seconds"
            ));
            expiration = max;
        }
    }
    let (lifetime, warn_after) = lifetime(issuer, &binding, expiration, &audiences);
    let claims = issuer.claims(TokenSpec {
        namespace: ns,
        service_account: ObjectRef {
            name: name.to_string(),
            uid: uid_of(&account),
        },
        binding,
        audiences: audiences.clone(),
        lifetime,
        warn_after,
        now,
        jti: meta::uuid(),
    });
    let token = issuer
        .sign(&claims)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut spec = json!({"audiences": audiences, "expirationSeconds": expiration});
    if let Some(r) = &bound {
        spec["boundObjectRef"] = r.to_json();
    }
    let body = json!({
        "kind": KIND,
        "apiVersion": format!("{GROUP}/v1"),
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": rfc3339(now)},
        "spec": spec,
        "status": {"token": token, "expirationTimestamp": rfc3339(now.saturating_add(expiration))},
    });
    tracing::debug!(user = %user.name, %ns, service_account = %name, expiration, "issued a service-account token");
    Ok(Issued { body, warnings })
}

/// (seconds to `exp`, seconds to `warnafter`): a pod-bound token for the
/// API audiences asked for the kubelet's legacy 3607 s lives a year but
/// carries when it would have expired (kube-apiserver's behaviour with
/// `--service-account-extend-token-expiration`).
fn lifetime(
    issuer: &TokenIssuer,
    binding: &Binding,
    expiration: i64,
    audiences: &[String],
) -> (i64, Option<i64>) {
    let kube_audiences = audiences
        .iter()
        .all(|a| issuer.options.api_audiences.contains(a));
    if issuer.options.extend_expiration
        && binding.pod.is_some()
        && expiration == KUBELET_LEGACY_EXPIRATION_SECONDS
        && kube_audiences
    {
        let extended = issuer
            .options
            .max_expiration_seconds
            .map_or(EXTENDED_EXPIRATION_SECONDS, |m| {
                m.max(EXTENDED_EXPIRATION_SECONDS)
            });
        return (extended, Some(expiration));
    }
    (expiration, None)
}

fn rfc3339(secs: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(secs)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// NodeRestriction's rule: a node may only get tokens bound to a pod (by
/// name and uid) that is scheduled on it.
async fn admit_node(
    api: &ApiServer,
    node: &str,
    ns: &str,
    name: &str,
    bound: Option<&BoundRef>,
) -> Result<(), ApiError> {
    let forbidden =
        |why: &str| ApiError::Forbidden(format!("serviceaccounts \"{name}\" is forbidden: {why}"));
    let Some(r) = bound.filter(|r| {
        r.api_version.as_deref() == Some("v1")
            && r.kind.as_deref() == Some("Pod")
            && r.name.as_deref().is_some_and(|n| !n.is_empty())
    }) else {
        return Err(forbidden("node requested token not bound to a pod"));
    };
    let Some(uid) = r.uid.as_deref().filter(|u| !u.is_empty()) else {
        return Err(forbidden(
            "node requested token with a pod binding without a uid",
        ));
    };
    let pod = get(api, "pods", Some(ns), r.name.as_deref().unwrap_or_default()).await?;
    if uid_of(&pod) != uid {
        return Err(forbidden(&format!(
            "the UID in the bound object reference ({uid}) does not match the UID in record. The object might have been deleted and then recreated"
        )));
    }
    if str_at(&pod, "/spec/nodeName") != node {
        return Err(forbidden(
            "node requested token bound to a pod scheduled on a different node",
        ));
    }
    Ok(())
}

/// The object a token is to be bound to, with its uid (and for a pod, its
/// node), checked against the reference.
async fn bind(api: &ApiServer, ns: &str, sa_name: &str, r: &BoundRef) -> Result<Binding, ApiError> {
    let kind = r.kind.as_deref().unwrap_or_default();
    let version = r.api_version.as_deref().unwrap_or_default();
    let Some(name) = r.name.as_deref().filter(|n| !n.is_empty()) else {
        return Err(invalid("", Cause::required("spec.boundObjectRef.name")));
    };
    let (obj, binding) = match (version, kind) {
        ("v1", "Pod") => {
            let pod = get(api, "pods", Some(ns), name).await?;
            if pod_service_account(&pod) != sa_name {
                return Err(ApiError::BadRequest(format!(
                    "cannot bind token for serviceaccount {sa_name:?} to pod running with different serviceaccount name."
                )));
            }
            let node = match str_at(&pod, "/spec/nodeName") {
                "" => None,
                n => Some(node_ref(api, n).await?),
            };
            let b = Binding {
                pod: Some(ObjectRef {
                    name: name.into(),
                    uid: uid_of(&pod),
                }),
                node,
                ..Default::default()
            };
            (pod, b)
        }
        ("v1", "Secret") => {
            let secret = get(api, "secrets", Some(ns), name).await?;
            let b = Binding {
                secret: Some(ObjectRef {
                    name: name.into(),
                    uid: uid_of(&secret),
                }),
                ..Default::default()
            };
            (secret, b)
        }
        ("v1", "Node") => {
            let node = get(api, "nodes", None, name).await?;
            let b = Binding {
                node: Some(ObjectRef {
                    name: name.into(),
                    uid: uid_of(&node),
                }),
                ..Default::default()
            };
            (node, b)
        }
        _ => {
            return Err(ApiError::BadRequest(format!(
                "cannot bind token against object of kind {kind:?} and version {version:?}"
            )))
        }
    };
    if let Some(want) = r.uid.as_deref().filter(|u| !u.is_empty()) {
        if uid_of(&obj) != want {
            return Err(ApiError::Conflict {
                subject: Subject {
                    group: String::new(),
                    kind: kind.into(),
                    name: name.into(),
                },
                msg: format!("the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated"),
            });
        }
    }
    Ok(binding)
}

/// A pod's node for the token's claims; a node that does not exist (yet)
/// still gives its name, as Kubernetes embeds it.
async fn node_ref(api: &ApiServer, node: &str) -> Result<ObjectRef, ApiError> {
    match get(api, "nodes", None, node).await {
        Ok(n) => Ok(ObjectRef {
            name: node.into(),
            uid: uid_of(&n),
        }),
        Err(ApiError::NotFound(_)) => Ok(ObjectRef {
            name: node.into(),
            uid: String::new(),
        }),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_decode_leniently_but_not_wrongly() {
        let b = decode(
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"audiences": ["a"], "expirationSeconds": 700,
                     "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p"}}}),
        )
        .unwrap();
        assert_eq!(b.spec.audiences, Some(vec!["a".to_string()]));
        assert_eq!(b.spec.expiration_seconds, Some(700));
        assert_eq!(
            b.spec.bound_object_ref.unwrap().to_json(),
            json!({"kind": "Pod", "apiVersion": "v1", "name": "p"})
        );
        let empty = decode(json!({"spec": null})).unwrap();
        assert!(empty.spec.audiences.is_none() && empty.metadata.name.is_none());
        for bad in [
            json!({"spec": {"expirationSeconds": "ten"}}),
            json!({"spec": {"audiences": "a"}}),
            json!({"kind": "Pod"}),
            json!({"apiVersion": "v1", "kind": "TokenRequest"}),
        ] {
            assert!(matches!(decode(bad), Err(ApiError::BadRequest(_))));
        }
    }

    #[test]
    fn default_service_account_of_a_pod() {
        assert_eq!(pod_service_account(&json!({"spec": {}})), "default");
        assert_eq!(
            pod_service_account(&json!({"spec": {"serviceAccountName": "x"}})),
            "x"
        );
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
