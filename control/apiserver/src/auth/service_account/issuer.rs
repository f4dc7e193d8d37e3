//! Issuing tokens: the claims kube-apiserver's TokenRequest puts in a token
//! (`token.Claims` in Kubernetes) and their signature. Everything that
//! signs a service-account token goes through `TokenIssuer::sign`.

use jsonwebtoken::Header;

use super::claims::{Claims, KubernetesClaims, ObjectRef};
use super::keys::SigningKey;
use super::username;

/// The kubelet's legacy request (kube-apiserver's
/// `WarnOnlyBoundTokenExpirationSeconds`): a pod-bound token asked for
/// with exactly this lifetime is made valid for `EXTENDED_EXPIRATION_SECONDS`
/// when `--service-account-extend-token-expiration` is on, so kubelets that
/// are slow to refresh do not break running pods.
pub const KUBELET_LEGACY_EXPIRATION_SECONDS: i64 = 3607;
/// One year, kube-apiserver's `ExpirationExtensionSeconds`.
pub const EXTENDED_EXPIRATION_SECONDS: i64 = 365 * 24 * 60 * 60;

#[derive(Debug, thiserror::Error)]
#[error("sign service-account token: {0}")]
pub struct SignError(#[from] jsonwebtoken::errors::Error);

/// How this server issues tokens, from its flags.
#[derive(Clone, Debug)]
pub struct IssuerOptions {
    /// `iss` of every token issued (the first `--service-account-issuer`).
    pub issuer: String,
    /// `--api-audiences`: what a TokenRequest with no audiences gets, and
    /// what an ordinary request's token must name.
    pub api_audiences: Vec<String>,
    /// `--service-account-max-token-expiration` in seconds; longer
    /// requests are shortened to it (with a warning), as in Kubernetes.
    pub max_expiration_seconds: Option<i64>,
    /// `--service-account-extend-token-expiration`.
    pub extend_expiration: bool,
}

/// What a token is bound to, with the objects' current uids.
#[derive(Clone, Debug, Default)]
pub struct Binding {
    pub pod: Option<ObjectRef>,
    pub secret: Option<ObjectRef>,
    pub node: Option<ObjectRef>,
}

/// What one token is for.
#[derive(Clone, Debug)]
pub struct TokenSpec<'a> {
    pub namespace: &'a str,
    pub service_account: ObjectRef,
    pub binding: Binding,
    pub audiences: Vec<String>,
    /// Seconds from `now` until `exp`.
    pub lifetime: i64,
    /// Seconds from `now` until `warnafter`, for an extended lifetime.
    pub warn_after: Option<i64>,
    pub now: i64,
    pub jti: String,
}

pub struct TokenIssuer {
    key: SigningKey,
    pub options: IssuerOptions,
}

impl TokenIssuer {
    pub fn new(key: SigningKey, options: IssuerOptions) -> Self {
        TokenIssuer { key, options }
    }

    /// The claims of a token for `spec`, issued by this server.
    pub fn claims(&self, spec: TokenSpec<'_>) -> Claims {
        Claims {
            iss: self.options.issuer.clone(),
            sub: username(spec.namespace, &spec.service_account.name),
            aud: spec.audiences,
            exp: spec.now.saturating_add(spec.lifetime),
            iat: Some(spec.now),
            nbf: Some(spec.now),
            jti: spec.jti,
            kubernetes: KubernetesClaims {
                namespace: spec.namespace.to_string(),
                serviceaccount: spec.service_account,
                pod: spec.binding.pod,
                secret: spec.binding.secret,
                node: spec.binding.node,
                warnafter: spec.warn_after.map(|w| spec.now.saturating_add(w)),
            },
        }
    }

    /// The signed JWT of `claims`: `alg` and `kid` in the header, no
    /// `typ`, as kube-apiserver writes them.
    pub fn sign(&self, claims: &Claims) -> Result<String, SignError> {
        let mut header = Header::new(self.key.public.alg);
        header.typ = None;
        header.kid = Some(self.key.public.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.key.key)?)
    }
}
