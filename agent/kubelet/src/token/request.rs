//! TokenRequest (`serviceaccounts/<name>/token`, authentication.k8s.io/v1)
//! for a pod, with the node's own credentials as kubelet does: the
//! projection's audience (none: the API server's default audiences), its
//! expirationSeconds, bound to the pod (name and UID) so the token dies
//! with the pod. Builds the request and makes the call; never caches.

use std::future::Future;

use jiff::Timestamp;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::PostParams;
use kube::{Api, Client};

/// A token as the API server issued it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub token: String,
    pub expires: Timestamp,
    /// The lifetime the server granted (its answer's expirationSeconds).
    pub ttl_seconds: i64,
}

/// Who issues tokens for one pod (the API server; a fake in tests).
pub trait Issuer {
    fn issue(
        &self,
        audience: &str,
        expiration_seconds: i64,
    ) -> impl Future<Output = Result<Token, String>> + Send;
}

/// The pod's ServiceAccount (the API defaults it to `default`).
pub fn service_account(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into())
}

/// The TokenRequest kubelet sends for a projection of `pod`.
pub fn body(pod: &Pod, audience: &str, expiration_seconds: i64) -> TokenRequest {
    TokenRequest {
        spec: TokenRequestSpec {
            audiences: if audience.is_empty() {
                Vec::new()
            } else {
                vec![audience.to_string()]
            },
            expiration_seconds: Some(expiration_seconds),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    }
}

/// The token in the server's answer, or why there is none.
pub fn token_of(answer: TokenRequest, requested_seconds: i64) -> Result<Token, String> {
    let status = answer
        .status
        .ok_or("the TokenRequest answer has no status")?;
    if status.token.is_empty() {
        return Err("the TokenRequest answer has an empty token".into());
    }
    Ok(Token {
        token: status.token,
        expires: status.expiration_timestamp.0,
        ttl_seconds: answer.spec.expiration_seconds.unwrap_or(requested_seconds),
    })
}

/// Issues tokens for `pod` through the API server.
pub struct ApiIssuer<'a> {
    pub client: Client,
    pub pod: &'a Pod,
}

impl Issuer for ApiIssuer<'_> {
    async fn issue(&self, audience: &str, expiration_seconds: i64) -> Result<Token, String> {
        let ns = self.pod.metadata.namespace.as_deref().unwrap_or("default");
        let sa = service_account(self.pod);
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns);
        let answer: TokenRequest = api
            .create_subresource(
                "token",
                &sa,
                &PostParams::default(),
                &body(self.pod, audience, expiration_seconds),
            )
            .await
            .map_err(|e| format!("failed to fetch token for service account {ns}/{sa}: {e}"))?;
        token_of(answer, expiration_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::authentication::v1::TokenRequestStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn the_request_is_kubelets_shape() {
        let mut pod = Pod::default();
        pod.metadata.name = Some("web".into());
        pod.metadata.uid = Some("u-1".into());
        let v = serde_json::to_value(body(&pod, "", 3607)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "metadata": {},
                "spec": {
                    "audiences": [],
                    "expirationSeconds": 3607,
                    "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "u-1"}
                }
            })
        );
        let v = serde_json::to_value(body(&pod, "vault", 600)).unwrap();
        assert_eq!(v["spec"]["audiences"], serde_json::json!(["vault"]));
        assert_eq!(service_account(&pod), "default");
    }

    #[test]
    fn the_answer_gives_the_token_and_the_granted_lifetime() {
        let exp = Timestamp::from_second(1_700_003_600).unwrap_or(Timestamp::UNIX_EPOCH);
        let mut answer = TokenRequest {
            status: Some(TokenRequestStatus {
                token: "jwt".into(),
                expiration_timestamp: Time(exp),
            }),
            ..Default::default()
        };
        answer.spec.expiration_seconds = Some(7200);
        assert_eq!(
            token_of(answer.clone(), 3600),
            Ok(Token {
                token: "jwt".into(),
                expires: exp,
                ttl_seconds: 7200
            })
        );
        answer.spec.expiration_seconds = None;
        assert_eq!(
            token_of(answer.clone(), 3600).map(|t| t.ttl_seconds),
            Ok(3600)
        );
        answer.status = None;
        assert!(token_of(answer, 3600).is_err());
    }
}
