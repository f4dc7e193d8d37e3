//! The claims of a service-account token, spelled as kube-apiserver writes
//! them (`iss`, `sub`, `aud`, `exp`, `iat`, `nbf`, `jti` and the private
//! `kubernetes.io` claim), and their validation against the clock and the
//! audiences a request targets. Pure: no keys, no storage.

use serde::{Deserialize, Deserializer, Serialize};

use super::{username, SERVICE_ACCOUNTS_GROUP};
use crate::auth::{User, AUTHENTICATED_GROUP};

/// Clock skew tolerated on `exp`, `nbf` and `iat`: go-jose's
/// `DefaultLeeway`, which kube-apiserver uses.
pub const LEEWAY_SECONDS: i64 = 60;

/// A token's claims.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    /// Always written as a list; a single string is accepted (RFC 7519).
    #[serde(deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaims,
}

/// The private claim: what the token is bound to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaims {
    pub namespace: String,
    pub serviceaccount: ObjectRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<ObjectRef>,
    /// For a lifetime extended for the kubelet's legacy 3607 s request:
    /// when the token would have expired (kube-apiserver only warns then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnafter: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub name: String,
    pub uid: String,
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Aud {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Aud::deserialize(d)? {
        Aud::One(a) => vec![a],
        Aud::Many(v) => v,
    })
}

/// Why valid-looking claims are refused; the text is kube-apiserver's,
/// as TokenReview's `status.error` shows it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("service account token has expired")]
    Expired,
    #[error("service account token is not valid yet")]
    NotValidYet,
    #[error("service account token is issued in the future")]
    IssuedInTheFuture,
    #[error("token audiences {token:?} is invalid for the target audiences {target:?}")]
    Audience {
        token: Vec<String>,
        target: Vec<String>,
    },
    #[error("service account token claims are inconsistent: {0}")]
    Inconsistent(&'static str),
}

/// Who a valid token names, before its objects are checked in storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccountInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub pod: Option<ObjectRef>,
    pub secret: Option<ObjectRef>,
    pub node: Option<ObjectRef>,
    pub jti: String,
    /// The token's audiences that the request targets.
    pub audiences: Vec<String>,
}

/// Kubernetes' user extra keys for what a token is bound to.
pub const EXTRA_POD_NAME: &str = "authentication.kubernetes.io/pod-name";
pub const EXTRA_POD_UID: &str = "authentication.kubernetes.io/pod-uid";
pub const EXTRA_NODE_NAME: &str = "authentication.kubernetes.io/node-name";
pub const EXTRA_NODE_UID: &str = "authentication.kubernetes.io/node-uid";
pub const EXTRA_CREDENTIAL_ID: &str = "authentication.kubernetes.io/credential-id";

impl ServiceAccountInfo {
    /// The user a request with this token acts as.
    pub fn user(&self) -> User {
        User {
            name: username(&self.namespace, &self.name),
            groups: vec![
                SERVICE_ACCOUNTS_GROUP.to_string(),
                format!("{SERVICE_ACCOUNTS_GROUP}:{}", self.namespace),
                AUTHENTICATED_GROUP.to_string(),
            ],
            uid: Some(self.uid.clone()),
        }
    }

    /// The user's extra values, as Kubernetes reports them (TokenReview).
    pub fn extra(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(p) = &self.pod {
            out.push((EXTRA_POD_NAME, p.name.clone()));
            out.push((EXTRA_POD_UID, p.uid.clone()));
        }
        if let Some(n) = &self.node {
            out.push((EXTRA_NODE_NAME, n.name.clone()));
            if !n.uid.is_empty() {
                out.push((EXTRA_NODE_UID, n.uid.clone()));
            }
        }
        if !self.jti.is_empty() {
            out.push((EXTRA_CREDENTIAL_ID, format!("JTI={}", self.jti)));
        }
        out
    }
}

/// Checks the time claims (with `LEEWAY_SECONDS`), that the token's
/// audiences meet `target` (the request's; the API audiences for an
/// ordinary request), and that the claims agree with each other. The
/// issuer and signature are the caller's to have checked.
pub fn validate(c: &Claims, now: i64, target: &[String]) -> Result<ServiceAccountInfo, ClaimError> {
    if now > c.exp.saturating_add(LEEWAY_SECONDS) {
        return Err(ClaimError::Expired);
    }
    if c.nbf
        .is_some_and(|nbf| now.saturating_add(LEEWAY_SECONDS) < nbf)
    {
        return Err(ClaimError::NotValidYet);
    }
    if c.iat
        .is_some_and(|iat| now.saturating_add(LEEWAY_SECONDS) < iat)
    {
        return Err(ClaimError::IssuedInTheFuture);
    }
    let audiences: Vec<String> = c
        .aud
        .iter()
        .filter(|a| target.contains(a))
        .cloned()
        .collect();
    if audiences.is_empty() {
        return Err(ClaimError::Audience {
            token: c.aud.clone(),
            target: target.to_vec(),
        });
    }
    let k = &c.kubernetes;
    if k.namespace.is_empty() || k.serviceaccount.name.is_empty() {
        return Err(ClaimError::Inconsistent("no namespace or service account"));
    }
    if c.sub != username(&k.namespace, &k.serviceaccount.name) {
        return Err(ClaimError::Inconsistent(
            "sub does not name the service account",
        ));
    }
    if k.secret.is_some() && (k.pod.is_some() || k.node.is_some()) {
        return Err(ClaimError::Inconsistent(
            "bound to a secret and a pod or node",
        ));
    }
    Ok(ServiceAccountInfo {
        namespace: k.namespace.clone(),
        name: k.serviceaccount.name.clone(),
        uid: k.serviceaccount.uid.clone(),
        pod: k.pod.clone(),
        secret: k.secret.clone(),
        node: k.node.clone(),
        jti: c.jti.clone(),
        audiences,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000;

    fn claims() -> Claims {
        Claims {
            iss: "https://kubernetes.default.svc.cluster.local".into(),
            sub: "system:serviceaccount:ns:sa".into(),
            aud: vec!["api".into(), "vault".into()],
            exp: NOW + 600,
            iat: Some(NOW),
            nbf: Some(NOW),
            jti: "j".into(),
            kubernetes: KubernetesClaims {
                namespace: "ns".into(),
                serviceaccount: ObjectRef {
                    name: "sa".into(),
                    uid: "sa-uid".into(),
                },
                pod: Some(ObjectRef {
                    name: "p".into(),
                    uid: "p-uid".into(),
                }),
                ..Default::default()
            },
        }
    }

    fn api() -> Vec<String> {
        vec!["api".to_string()]
    }

    #[test]
    fn valid_token_names_the_service_account() {
        let info = validate(&claims(), NOW, &api()).unwrap();
        assert_eq!((info.namespace.as_str(), info.name.as_str()), ("ns", "sa"));
        assert_eq!(info.audiences, vec!["api"]);
        let u = info.user();
        assert_eq!(u.name, "system:serviceaccount:ns:sa");
        assert_eq!(
            u.groups,
            vec![
                "system:serviceaccounts",
                "system:serviceaccounts:ns",
                "system:authenticated"
            ]
        );
        assert_eq!(u.uid.as_deref(), Some("sa-uid"));
        let extra = info.extra();
        assert!(extra.contains(&(EXTRA_POD_NAME, "p".into())));
        assert!(extra.contains(&(EXTRA_POD_UID, "p-uid".into())));
        assert!(extra.contains(&(EXTRA_CREDENTIAL_ID, "JTI=j".into())));
    }

    #[test]
    fn expiry_and_not_before_with_leeway() {
        let c = claims();
        assert!(validate(&c, c.exp + LEEWAY_SECONDS, &api()).is_ok());
        assert_eq!(
            validate(&c, c.exp + LEEWAY_SECONDS + 1, &api()),
            Err(ClaimError::Expired)
        );
        let mut early = claims();
        early.iat = None;
        early.nbf = Some(NOW + 600);
        assert_eq!(
            validate(&early, NOW + 600 - LEEWAY_SECONDS - 1, &api()),
            Err(ClaimError::NotValidYet)
        );
        assert!(validate(&early, NOW + 600 - LEEWAY_SECONDS, &api()).is_ok());
        let mut future = claims();
        future.iat = Some(NOW + 3600);
        future.exp = NOW + 7200;
        assert_eq!(
            validate(&future, NOW, &api()),
            Err(ClaimError::IssuedInTheFuture)
        );
    }

    #[test]
    fn audiences_must_meet_the_target() {
        let err = validate(&claims(), NOW, &["other".to_string()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"token audiences ["api", "vault"] is invalid for the target audiences ["other"]"#
        );
        let info = validate(&claims(), NOW, &["vault".into(), "api".into()]).unwrap();
        assert_eq!(info.audiences, vec!["api", "vault"]);
        assert!(validate(&claims(), NOW, &[]).is_err());
    }

    #[test]
    fn inconsistent_claims_are_refused() {
        let mut c = claims();
        c.sub = "system:serviceaccount:ns:other".into();
        assert!(matches!(
            validate(&c, NOW, &api()),
            Err(ClaimError::Inconsistent(_))
        ));
        let mut c = claims();
        c.kubernetes.secret = Some(ObjectRef::default());
        assert!(matches!(
            validate(&c, NOW, &api()),
            Err(ClaimError::Inconsistent(_))
        ));
        let mut c = claims();
        c.kubernetes.namespace.clear();
        c.sub = "system:serviceaccount::sa".into();
        assert!(validate(&c, NOW, &api()).is_err());
    }

    #[test]
    fn wire_form_is_kubernetes() {
        let v = serde_json::to_value(claims()).unwrap();
        assert_eq!(v["aud"], json!(["api", "vault"]));
        assert_eq!(v["kubernetes.io"]["serviceaccount"]["uid"], "sa-uid");
        assert_eq!(v["kubernetes.io"]["pod"]["name"], "p");
        assert!(v["kubernetes.io"].get("secret").is_none());
        // A single audience string (RFC 7519) and missing iat/nbf decode.
        let mut w = v.clone();
        w["aud"] = json!("api");
        w.as_object_mut().unwrap().remove("iat");
        let c: Claims = serde_json::from_value(w).unwrap();
        assert_eq!((c.aud, c.iat), (vec!["api".to_string()], None));
    }
}
