//! TokenReview (authentication.k8s.io/v1): who a bearer token is, for the
//! audiences the review names (the API audiences when it names none),
//! answered by the very authenticator every request goes through
//! (`auth::bearer`), so a review cannot disagree with a request carrying
//! the token. Never stored. Who may ask is the authorizer's call
//! (`create tokenreviews`), made before this runs.

use std::collections::BTreeMap;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewStatus, UserInfo};

use crate::auth::bearer::Authenticated;
use crate::status::ApiError;
use crate::ApiServer;

/// `review` with its status filled in.
pub async fn review(api: &ApiServer, mut review: TokenReview) -> Result<TokenReview, ApiError> {
    let token = review.spec.token.clone().unwrap_or_default();
    if token.is_empty() {
        return Err(ApiError::BadRequest(
            "token is required for TokenReview in authentication".into(),
        ));
    }
    let Some(bearer) = api.bearer.as_deref() else {
        // Kubernetes answers a server without token authentication with
        // the review as sent.
        return Ok(review);
    };
    let audiences = review.spec.audiences.clone().filter(|a| !a.is_empty());
    let result = bearer.authenticate(&token, audiences.as_deref()).await;
    review.status = Some(status(result));
    Ok(review)
}

fn status(result: Result<Authenticated, String>) -> TokenReviewStatus {
    match result {
        Ok(a) => {
            let extra: BTreeMap<String, Vec<String>> = a
                .service_account
                .iter()
                .flat_map(|sa| sa.extra())
                .map(|(k, v)| (k.to_string(), vec![v]))
                .collect();
            TokenReviewStatus {
                authenticated: Some(true),
                audiences: Some(a.audiences),
                user: Some(UserInfo {
                    username: Some(a.user.name),
                    uid: a.user.uid,
                    groups: Some(a.user.groups),
                    extra: (!extra.is_empty()).then_some(extra),
                }),
                error: None,
            }
        }
        Err(e) => TokenReviewStatus {
            authenticated: Some(false),
            error: Some(e),
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::service_account::claims::{ObjectRef, ServiceAccountInfo};

    #[test]
    fn status_of_a_service_account_token() {
        let info = ServiceAccountInfo {
            namespace: "ns".into(),
            name: "sa".into(),
            uid: "u".into(),
            pod: Some(ObjectRef {
                name: "p".into(),
                uid: "pu".into(),
            }),
            secret: None,
            node: None,
            jti: "j".into(),
            audiences: vec!["api".into()],
        };
        let s = status(Ok(Authenticated {
            user: info.user(),
            audiences: info.audiences.clone(),
            service_account: Some(info),
        }));
        assert_eq!(s.authenticated, Some(true));
        assert_eq!(s.audiences, Some(vec!["api".to_string()]));
        let user = s.user.unwrap();
        assert_eq!(
            user.username.as_deref(),
            Some("system:serviceaccount:ns:sa")
        );
        let extra = user.extra.unwrap();
        assert_eq!(
            extra["authentication.kubernetes.io/pod-name"],
            vec!["p".to_string()]
        );
        let refused = status(Err("service account token has expired".into()));
        assert_eq!(refused.authenticated, Some(false));
        assert_eq!(
            refused.error.as_deref(),
            Some("service account token has expired")
        );
        assert!(refused.user.is_none());
    }
}
