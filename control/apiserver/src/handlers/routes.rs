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
        // Outermost last: impersonation decides who the caller is before
        // the plain URLs are authorized.
        .layer(axum::middleware::from_fn_with_state(
            api.clone(),
            super::non_resource::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            api.clone(),
            super::impersonate::layer,
        ))
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
    let asked_review = match (core, segs.as_slice()) {
        (false, [g, v, plural]) => reviews::find(g, v, plural)
            .filter(|r| !r.namespaced())
            .map(|r| (r, None)),
        (false, [g, v, "namespaces", ns, plural]) => reviews::find(g, v, plural)
            .filter(|r| r.namespaced())
            .map(|r| (r, Some(ns.to_string()))),
        _ => None,
    };
    if let Some((r, ns)) = asked_review {
        return match review(&api, r, ns.as_deref(), req).await {
            Ok(resp) => resp,
            Err(e) => e.into_response(),
        };
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

/// Reviews are create-only. Creating one is authorized like any create:
/// the self reviews are open to every authenticated user through the
/// bootstrap `system:basic-user` role, the others need a grant.
async fn review(
    api: &ApiServer,
    r: &reviews::Review,
    ns: Option<&str>,
    req: Req,
) -> Result<Response, ApiError> {
    if req.method != Method::POST {
        return Err(ApiError::MethodNotAllowed);
    }
    let Some(user) = req.user.as_ref() else {
        return Err(ApiError::Unauthorized);
    };
    let attrs = Attributes {
        verb: Some(Verb::Create),
        group: r.group,
        resource: r.plural,
        namespace: ns,
        ..Default::default()
    };
    if let Decision::Deny(why) = api.authorizer().authorize(user, &attrs) {
        let scope = match ns {
            Some(ns) => format!(" in the namespace \"{ns}\""),
            None => " at the cluster scope".into(),
        };
        let why = if why.is_empty() {
            why
        } else {
            format!(": {why}")
        };
        return Err(ApiError::Forbidden(format!(
            "{p} is forbidden: User \"{}\" cannot create resource \"{p}\" in API group \"{}\"{scope}{why}",
            user.name,
            r.group,
            p = r.plural
        )));
    }
    let b = read_body(api, &req.headers, req.body).await?;
    let v = read_object(&req.headers, &b)?;
    let out = crate::review_answer::review(api, r, user, ns, v).await?;
    Ok(json_response(StatusCode::CREATED, &out))
}
