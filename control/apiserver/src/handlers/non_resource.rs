//! Authorization of the API's plain URLs — `/api`, `/apis`, the group and
//! version discovery documents, `/openapi/*` — as non-resource requests
//! (verb `get` on the path), which Kubernetes' `system:discovery` role
//! grants every authenticated user. Resource paths and reviews are
//! authorized where they are served; anonymous callers only reach the
//! public paths (authentication saw to that).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::{Attributes, Decision, User, Verb};
use crate::status::ApiError;
use crate::ApiServer;

/// Whether `path` is a discovery or OpenAPI URL rather than a resource.
pub fn is_non_resource(path: &str) -> bool {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    matches!(
        segs.as_slice(),
        ["version"]
            | ["api"]
            | ["apis"]
            | ["openapi", ..]
            | ["api", _]
            | ["apis", _]
            | ["apis", _, _]
    )
}

pub async fn layer(State(api): State<Arc<ApiServer>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if !matches!(*req.method(), Method::GET | Method::HEAD) || !is_non_resource(&path) {
        return next.run(req).await;
    }
    let Some(user) = req.extensions().get::<User>() else {
        return next.run(req).await;
    };
    let a = Attributes {
        verb: Some(Verb::Get),
        path: Some(&path),
        ..Default::default()
    };
    match api.authorizer.authorize(user, &a) {
        Decision::Allow => next.run(req).await,
        Decision::Deny(reason) => {
            let reason = if reason.is_empty() {
                String::new()
            } else {
                format!(": {reason}")
            };
            ApiError::Forbidden(format!(
                "forbidden: User \"{}\" cannot get path \"{path}\"{reason}",
                user.name
            ))
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_paths_only() {
        for p in [
            "/api",
            "/apis",
            "/api/v1",
            "/apis/apps",
            "/apis/apps/v1",
            "/version",
            "/openapi/v2",
            "/openapi/v3/apis/apps/v1",
        ] {
            assert!(is_non_resource(p), "{p}");
        }
        for p in [
            "/api/v1/pods",
            "/apis/apps/v1/deployments",
            "/apis/apps/v1/namespaces/a/deployments",
            "/healthz",
        ] {
            assert!(!is_non_resource(p), "{p}");
        }
    }
}
