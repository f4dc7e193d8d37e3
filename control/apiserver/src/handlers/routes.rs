//! The API's routes (axum): version, discovery, OpenAPI, the reviews, and
//! both resource roots, each request parsed into a target and handed to
//! `serve`. No authorization or verbs here.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Extension, Router};

use super::request::{read_body, read_object, Params, Req};
use super::response::{accept, json_response};
use super::serve::serve;
use super::target::{self, Target};
use crate::auth::{Attributes, Decision, User, Verb};
use crate::status::ApiError;
use crate::{discovery, openapi, reviews, ApiServer};

/// The API's routes; authentication is mounted around them by the server.
pub fn router(api: Arc<ApiServer>) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/api", get(core_versions))
        .route("/apis", get(groups))
        .route("/openapi/v2", get(openapi::v2))
        .route("/openapi/v3", get(openapi::v3_index))
        .route("/openapi/v3/{*gv}", get(openapi::v3_doc))
        .route("/api/{*rest}", any(any_resource))
        .route("/apis/{*rest}", any(any_resource))
        .with_state(api)
}

async fn version(State(api): State<Arc<ApiServer>>) -> Response {
    json_response(StatusCode::OK, &discovery::version(&api.config.git_version))
}

fn aggregated_response(core: bool) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, discovery::AGGREGATED_V2)],
        discovery::aggregated(core).to_string(),
    )
        .into_response()
}

async fn core_versions(headers: HeaderMap) -> Response {
    if discovery::wants_aggregated(accept(&headers)) {
        return aggregated_response(true);
    }
    json_response(StatusCode::OK, &discovery::api_versions())
}

async fn groups(headers: HeaderMap) -> Response {
    if discovery::wants_aggregated(accept(&headers)) {
        return aggregated_response(false);
    }
    json_response(StatusCode::OK, &discovery::api_groups())
}

/// Both API roots: `/api/...` (the core group) and `/apis/...`.
async fn any_resource(
    State(api): State<Arc<ApiServer>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    user: Option<Extension<User>>,
    body: Body,
) -> Response {
    let core = uri.path().starts_with("/api/");
    let req = Req {
        method,
        headers,
        params: Params(query),
        user: user.map(|u| u.0),
        body,
    };
    resource(api, core, uri, req).await
}

async fn resource(api: Arc<ApiServer>, core: bool, uri: Uri, req: Req) -> Response {
    let prefix = if core { "/api/" } else { "/apis/" };
    let path = uri.path().strip_prefix(prefix).unwrap_or_default();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if let (false, [g, v, plural]) = (core, segs.as_slice()) {
        if let Some(r) = reviews::find(g, v, plural) {
            return match review(&api, r, req).await {
                Ok(resp) => resp,
                Err(e) => e.into_response(),
            };
        }
    }
    let target = match target::parse(core, &segs) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    match target {
        Target::Group(g) => match discovery::api_group(&g) {
            Some(doc) if req.method == Method::GET => json_response(StatusCode::OK, &doc),
            _ => ApiError::NoRoute.into_response(),
        },
        Target::ResourceList { group, version } => match discovery::resource_list(&group, &version)
        {
            Some(doc) if req.method == Method::GET => json_response(StatusCode::OK, &doc),
            _ => ApiError::NoRoute.into_response(),
        },
        Target::Resource(t) => match serve(api, t, req).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        },
    }
}

/// Reviews are create-only. Self reviews are open to every authenticated
/// user (as Kubernetes' `system:basic-user` role grants): the answer is
/// about the caller, so there is nothing to protect. Any other (a
/// TokenReview) is a `create` on the review resource, which the authorizer
/// must allow.
async fn review(api: &ApiServer, r: &reviews::Review, req: Req) -> Result<Response, ApiError> {
    if req.method != Method::POST {
        return Err(ApiError::MethodNotAllowed);
    }
    let Some(user) = req.user.as_ref() else {
        return Err(ApiError::Unauthorized);
    };
    if !reviews::is_self_review(r) {
        let attrs = Attributes {
            verb: Some(Verb::Create),
            group: r.group,
            resource: r.plural,
            ..Default::default()
        };
        if let Decision::Deny(reason) = api.authorizer.authorize(user, &attrs) {
            return Err(ApiError::Forbidden(format!(
                "{plural}.{group} is forbidden: User \"{name}\" cannot create resource \"{plural}\" in API group \"{group}\" at the cluster scope: {reason}",
                plural = r.plural,
                group = r.group,
                name = user.name,
            )));
        }
    }
    let b = read_body(api, &req.headers, req.body).await?;
    let v = read_object(&req.headers, &b)?;
    let out = reviews::review(api, r, user, v).await?;
    Ok(json_response(StatusCode::CREATED, &out))
}
