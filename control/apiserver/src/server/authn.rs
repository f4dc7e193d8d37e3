//! Authentication: who is calling, from the TLS client certificate (already
//! verified against the cluster CA during the handshake) or a bearer token
//! from the token file. The result goes into the request's extensions as an
//! `auth::User`; a request without credentials is refused with 401 unless it
//! asks for a public path (health), and bad credentials are always refused.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::status;
use crate::auth::token_file::TokenFile;
use crate::auth::{User, AUTHENTICATED_GROUP};

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
    tokens: TokenFile,
}

impl Authenticator {
    pub fn new(tokens: TokenFile) -> Self {
        Authenticator { tokens }
    }

    /// The user behind a request, None when it carries no credentials, or
    /// the reason its credentials are refused.
    pub fn user(
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
            return match self.tokens.user(token) {
                Some(u) => Ok(Some(with_authenticated(u.clone()))),
                None => Err("invalid bearer token".into()),
            };
        }
        match peer {
            Some(PeerIdentity::Certificate(u)) => Ok(Some(with_authenticated(u.clone()))),
            Some(PeerIdentity::Invalid(why)) => Err(why.clone()),
            Some(PeerIdentity::None) | None => Ok(None),
        }
    }
}

fn with_authenticated(mut u: User) -> User {
    if !u.groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
        u.groups.push(AUTHENTICATED_GROUP.into());
    }
    u
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
    match authn.user(peer.as_ref(), authorization.as_deref()) {
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

    fn authn() -> Authenticator {
        Authenticator::new(TokenFile::parse("tok,alice,1,\"dev\"\n").unwrap())
    }

    #[test]
    fn token_beats_certificate_and_adds_authenticated() {
        let cert = PeerIdentity::Certificate(User {
            name: "bob".into(),
            groups: vec![],
            uid: None,
        });
        let u = authn()
            .user(Some(&cert), Some(b"Bearer tok"))
            .unwrap()
            .unwrap();
        assert_eq!(u.name, "alice");
        assert_eq!(u.groups, vec!["dev", AUTHENTICATED_GROUP]);
        let u = authn().user(Some(&cert), None).unwrap().unwrap();
        assert_eq!(u.name, "bob");
    }

    #[test]
    fn bad_or_missing_credentials() {
        assert_eq!(authn().user(None, None), Ok(None));
        assert_eq!(authn().user(Some(&PeerIdentity::None), None), Ok(None));
        assert!(authn().user(None, Some(b"Bearer nope")).is_err());
        assert!(authn().user(None, Some(b"Basic abc")).is_err());
        assert!(authn().user(None, Some(b"Bearer ")).is_err());
        assert!(authn().user(None, Some(&[0xff, 0xfe])).is_err());
        assert!(authn()
            .user(Some(&PeerIdentity::Invalid("x".into())), None)
            .is_err());
    }
}
