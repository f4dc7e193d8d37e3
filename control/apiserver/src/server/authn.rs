//! Authentication: who is calling, from the TLS client certificate (already
//! verified against the cluster CA during the handshake) or a bearer token
//! (the token file's, or a service-account JWT: `auth::bearer`). The result goes into the request's extensions as an
//! `auth::User`; a request without credentials is refused with 401 unless it
//! asks for a public path (health), and bad credentials are always refused.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::status;
use crate::auth::bearer::{with_authenticated, BearerAuthenticator};
use crate::auth::token_file::TokenFile;
use crate::auth::User;

/// Paths anyone may read, as Kubernetes' `system:public-info-viewer`.
pub const PUBLIC_PATHS: &[&str] = &["/healthz", "/livez", "/readyz", "/version"];

/// What the TLS layer learned about the caller; put into every request of
/// the connection by the listener.
#[derive(Clone, Debug)]
pub enum PeerIdentity {
    /// No client certificate was presented.
    None,
    Certificate(User),
    /// A certificate that chained to the CA but names nobody usable.
    Invalid(String),
}

pub struct Authenticator {
    tokens: Arc<BearerAuthenticator>,
}

impl Authenticator {
    /// Bearer tokens from the token file only.
    pub fn new(tokens: TokenFile) -> Self {
        Self::with_bearer(Arc::new(BearerAuthenticator::file_only(tokens)))
    }

    /// Bearer tokens of every kind the server knows (the same authenticator
    /// the API server's TokenReview uses).
    pub fn with_bearer(tokens: Arc<BearerAuthenticator>) -> Self {
        Authenticator { tokens }
    }

    /// The user behind a request, None when it carries no credentials, or
    /// the reason its credentials are refused.
    pub async fn user(
        &self,
        peer: Option<&PeerIdentity>,
        authorization: Option<&[u8]>,
    ) -> Result<Option<User>, String> {
        if let Some(value) = authorization {
            let value = std::str::from_utf8(value).map_err(|_| "bad Authorization header")?;
            let token = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or("only bearer tokens are accepted")?;
            return self
                .tokens
                .authenticate(token, None)
                .await
                .map(|a| Some(a.user));
        }
        match peer {
            Some(PeerIdentity::Certificate(u)) => Ok(Some(with_authenticated(u.clone()))),
            Some(PeerIdentity::Invalid(why)) => Err(why.clone()),
            Some(PeerIdentity::None) | None => Ok(None),
        }
    }
}

pub async fn authenticate(
    State(authn): State<Arc<Authenticator>>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req.extensions().get::<PeerIdentity>().cloned();
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    match authn.user(peer.as_ref(), authorization.as_deref()).await {
        Ok(Some(user)) => {
            tracing::trace!(user = %user.name, path = %req.uri().path(), "authenticated");
            req.extensions_mut().insert(user);
            next.run(req).await
        }
        Ok(None) if PUBLIC_PATHS.contains(&req.uri().path()) => next.run(req).await,
        Ok(None) => unauthorized(),
        Err(why) => {
            tracing::debug!(path = %req.uri().path(), %why, "authentication failed");
            unauthorized()
        }
    }
}

/// The same answer whatever went wrong, as kube-apiserver gives: the
/// caller learns nothing about which credential failed.
fn unauthorized() -> Response {
    status::failure(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AUTHENTICATED_GROUP;

    fn authn() -> Authenticator {
        Authenticator::new(TokenFile::parse("tok,alice,1,\"dev\"\n").unwrap())
    }

    #[tokio::test]
    async fn token_beats_certificate_and_adds_authenticated() {
        let cert = PeerIdentity::Certificate(User {
            name: "bob".into(),
            groups: vec![],
            uid: None,
        });
        let u = authn()
            .user(Some(&cert), Some(b"Bearer tok"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(u.name, "alice");
        assert_eq!(u.groups, vec!["dev", AUTHENTICATED_GROUP]);
        let u = authn().user(Some(&cert), None).await.unwrap().unwrap();
        assert_eq!(u.name, "bob");
    }

    #[tokio::test]
    async fn bad_or_missing_credentials() {
        let a = authn();
        assert_eq!(a.user(None, None).await, Ok(None));
        assert_eq!(a.user(Some(&PeerIdentity::None), None).await, Ok(None));
        assert!(a.user(None, Some(b"Bearer nope")).await.is_err());
        assert!(a.user(None, Some(b"Basic abc")).await.is_err());
        assert!(a.user(None, Some(b"Bearer ")).await.is_err());
        assert!(a.user(None, Some(&[0xff, 0xfe])).await.is_err());
        assert!(a
            .user(Some(&PeerIdentity::Invalid("x".into())), None)
            .await
            .is_err());
    }
}
