//! The HTTP face of the API server (axum): routes, the request → verb
//! mapping, authorization before every verb, bodies and media types, and
//! responses as JSON or `Status`. The verbs themselves are `rest`'s.

pub mod node_refs;
pub mod pod_node;
pub mod request;
pub mod target;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Extension, Router};
use serde_json::{json, Value};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use super::patch::{self, PatchKind};
use super::registry::workload;
use super::resources::Sub;
use super::rest::{self, Change, DeleteOptions};
use super::status::ApiError;
use super::{discovery, openapi, reviews, watch, ApiServer};
use crate::auth::{Attributes, Decision, User, Verb};
use request::{read_body, read_object, Params};
use target::{ResourceTarget, Target};

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

pub(crate) fn json_response(code: StatusCode, v: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

async fn version(State(api): State<Arc<ApiServer>>) -> Response {
    json_response(StatusCode::OK, &discovery::version(&api.config.git_version))
}

fn accept(headers: &HeaderMap) -> &str {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
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

struct Req {
    method: Method,
    headers: HeaderMap,
    params: Params,
    user: Option<User>,
    body: Body,
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

/// Reviews are create-only and open to every authenticated user (as
/// Kubernetes' `system:basic-user` role grants): the answer is about the
/// caller, so there is nothing to protect by asking the authorizer first.
async fn review(api: &ApiServer, r: &reviews::Review, req: Req) -> Result<Response, ApiError> {
    if req.method != Method::POST {
        return Err(ApiError::MethodNotAllowed);
    }
    let Some(user) = req.user.as_ref() else {
        return Err(ApiError::Unauthorized);
    };
    let b = read_body(api, &req.headers, req.body).await?;
    let v = read_object(&req.headers, &b)?;
    let out = reviews::review(api, r, user, v).await?;
    Ok(json_response(StatusCode::CREATED, &out))
}

fn verb_of(method: &Method, t: &ResourceTarget, watch: bool) -> Result<Verb, ApiError> {
    Ok(match (method.as_str(), t.name.is_some()) {
        ("GET", false) if watch || t.watch_path => Verb::Watch,
        ("GET", true) if watch || t.watch_path => Verb::Watch,
        ("GET", false) => Verb::List,
        ("GET", true) => Verb::Get,
        ("POST", false) => Verb::Create,
        ("POST", true) if t.sub == Some(Sub::Binding) => Verb::Create,
        ("PUT", true) => Verb::Update,
        ("PATCH", true) => Verb::Patch,
        ("DELETE", false) => Verb::DeleteCollection,
        ("DELETE", true) => Verb::Delete,
        _ => return Err(ApiError::MethodNotAllowed),
    })
}

fn attributes<'a>(
    verb: Verb,
    t: &'a ResourceTarget,
    name: Option<&'a str>,
    pod_node: Option<&'a str>,
    node_related: bool,
) -> Attributes<'a> {
    Attributes {
        verb: Some(verb),
        group: t.res.group,
        resource: t.res.plural,
        subresource: t.sub.map(Sub::name),
        namespace: t.namespace.as_deref(),
        name,
        pod_node_name: pod_node,
        node_related,
    }
}

fn authorize(
    api: &ApiServer,
    user: Option<&User>,
    verb: Verb,
    t: &ResourceTarget,
    name: Option<&str>,
    pod_node: Option<&str>,
    node_related: bool,
) -> Result<(), ApiError> {
    let Some(user) = user else {
        return Err(ApiError::Unauthorized);
    };
    let attrs = attributes(verb, t, name, pod_node, node_related);
    match api.authorizer.authorize(user, &attrs) {
        Decision::Allow => Ok(()),
        Decision::Deny(reason) => {
            let what = match &t.sub {
                Some(s) => format!("{}/{}", t.res.plural, s.name()),
                None => t.res.plural.to_string(),
            };
            let group = if t.res.group.is_empty() {
                "\"\"".to_string()
            } else {
                format!("\"{}\"", t.res.group)
            };
            let scope = match &t.namespace {
                Some(ns) => format!(" in the namespace \"{ns}\""),
                None => " at the cluster scope".into(),
            };
            // Kubernetes names the object when the request does (a create's
            // body name is not part of the request, so it is not shown).
            let shown = match (verb, &t.name) {
                (Verb::Create, None) => String::new(),
                _ => name.map(|n| format!(" \"{n}\"")).unwrap_or_default(),
            };
            let verb = verb.as_str();
            Err(ApiError::Forbidden(format!(
                "{what}{shown} is forbidden: User \"{}\" cannot {verb} resource \"{}\" in API group {group}{scope}: {reason}",
                user.name, what
            )))
        }
    }
}

async fn serve(api: Arc<ApiServer>, t: ResourceTarget, req: Req) -> Result<Response, ApiError> {
    let watch = req.params.flag("watch");
    let verb = verb_of(&req.method, &t, watch)?;
    let dry_run = match req.params.get("dryRun") {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "Invalid dry run value {other:?}: supported values: \"All\""
            )))
        }
    };
    let ns = t.namespace.as_deref();
    // The node authorizer needs the object's name (from the body for a
    // create) and a pod's node: from storage for an existing pod, from the
    // body for a new one.
    let is_pod = t.res.kind == "Pod";
    let mut raw_body = Some(req.body);
    let mut body_bytes = None;
    let mut body_name = None;
    let mut pod_node: Option<String> = None;
    if verb == Verb::Create && t.name.is_none() {
        let b = read_body(&api, &req.headers, raw_body.take().unwrap_or_default()).await?;
        if let Ok(v) = read_object(&req.headers, &b) {
            body_name = v
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .map(str::to_string);
            if is_pod {
                pod_node = v
                    .pointer("/spec/nodeName")
                    .and_then(Value::as_str)
                    .map(str::to_string);
            }
        }
        body_bytes = Some(b);
    } else if let (Some(name), Some(user)) = (&t.name, req.user.as_ref()) {
        let attrs = attributes(verb, &t, Some(name), None, false);
        pod_node = pod_node::for_attributes(&api, user, &attrs).await;
    }
    // A list or watch pinned to one object by `metadata.name=X` is a read
    // of that object, as Kubernetes' request info names it.
    let selected_name = match (verb, &t.name) {
        (Verb::List | Verb::Watch, None) => req
            .params
            .list_options(t.res)
            .ok()
            .and_then(|o| o.field.equal_value("metadata.name").map(str::to_string)),
        _ => None,
    };
    let name = t
        .name
        .as_deref()
        .or(body_name.as_deref())
        .or(selected_name.as_deref());
    let related = node_refs::for_request(&api, req.user.as_ref(), verb, &t, name).await?;
    authorize(
        &api,
        req.user.as_ref(),
        verb,
        &t,
        name,
        pod_node.as_deref(),
        related,
    )?;
    let body = match body_bytes {
        Some(b) => b,
        None if matches!(
            verb,
            Verb::Create | Verb::Update | Verb::Patch | Verb::Delete | Verb::DeleteCollection
        ) =>
        {
            read_body(&api, &req.headers, raw_body.take().unwrap_or_default()).await?
        }
        None => bytes::Bytes::new(),
    };
    let params = &req.params;
    let strict = params.get("fieldValidation") == Some("Strict");
    let check_fields =
        move |res: &'static super::resources::Resource, v: &Value| -> Result<(), ApiError> {
            if strict {
                let mut v = v.clone();
                super::registry::meta::type_meta(res, &mut v)?;
                super::registry::strict(res, &v)?;
            }
            Ok(())
        };
    match verb {
        Verb::Get if t.sub == Some(Sub::Log) => {
            let name = t.name.clone().unwrap_or_default();
            super::logs::proxy(&api, ns, &name, &params.0).await
        }
        Verb::Get if t.sub.is_none() && super::table::wanted(accept(&req.headers)) => {
            let name = t.name.clone().unwrap_or_default();
            let s = rest::get(&api, t.res, ns, &name).await?;
            let obj = rest::with_rv(s.value, s.mod_revision);
            let include = params
                .get("includeObject")
                .unwrap_or("PartialObjectMetadata");
            let tbl = super::table::table(t.res.kind, std::slice::from_ref(&obj), None, include);
            Ok(json_response(StatusCode::OK, &tbl))
        }
        Verb::Get => get_object(&api, &t).await,
        Verb::List => {
            let opts = params.list_options(t.res)?;
            let v = rest::list(&api, t.res, ns, &opts).await?;
            if super::table::wanted(accept(&req.headers)) {
                let items = v["items"].as_array().cloned().unwrap_or_default();
                let include = params
                    .get("includeObject")
                    .unwrap_or("PartialObjectMetadata");
                let tbl = super::table::table(t.res.kind, &items, v.get("metadata"), include);
                return Ok(json_response(StatusCode::OK, &tbl));
            }
            Ok(json_response(StatusCode::OK, &v))
        }
        Verb::Watch => {
            let mut opts = params.watch_options(t.res)?;
            // A watch on a named object is a watch filtered by its name.
            if let Some(n) = &t.name {
                opts.list.field =
                    std::mem::take(&mut opts.list.field).and_equals("metadata.name", n);
            }
            if super::table::wanted(accept(&req.headers)) {
                opts.as_table = Some(
                    params
                        .get("includeObject")
                        .unwrap_or("PartialObjectMetadata")
                        .to_string(),
                );
            }
            let rx = watch::start(api.clone(), t.res, t.namespace.clone(), opts).await?;
            let stream = ReceiverStream::new(rx).map(Ok::<_, std::convert::Infallible>);
            Ok((
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (header::CACHE_CONTROL, "no-cache, private"),
                ],
                Body::from_stream(stream),
            )
                .into_response())
        }
        Verb::Create => {
            let obj = read_object(&req.headers, &body)?;
            let name = t.name.clone().unwrap_or_default();
            if t.sub == Some(Sub::Binding) {
                let v = rest::bind(&api, t.res, ns, &name, &obj).await?;
                return Ok(json_response(StatusCode::CREATED, &v));
            }
            check_fields(t.res, &obj)?;
            let v = rest::create_with(&api, t.res, ns, obj, dry_run).await?;
            Ok(json_response(StatusCode::CREATED, &v))
        }
        Verb::Update => {
            let obj = read_object(&req.headers, &body)?;
            let name = t.name.clone().unwrap_or_default();
            let v = match t.sub {
                Some(Sub::Scale) => {
                    let replicas = obj
                        .pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    let precondition = obj
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string);
                    scale(&api, &t, &name, replicas, precondition, dry_run).await?
                }
                Some(Sub::Status) | None => {
                    check_fields(t.res, &obj)?;
                    rest::update_with(&api, t.res, ns, &name, t.sub, Change::Replace(obj), dry_run)
                        .await?
                }
                Some(_) => return Err(ApiError::MethodNotAllowed),
            };
            Ok(json_response(StatusCode::OK, &v))
        }
        Verb::Patch => {
            let ct = req
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let kind = PatchKind::from_content_type(ct)?;
            let name = t.name.clone().unwrap_or_default();
            let precondition = patch::precondition(kind, &body);
            let v = match t.sub {
                Some(Sub::Scale) => {
                    let current = rest::get(&api, t.res, ns, &name).await?;
                    let view = workload::scale_of(
                        t.res.kind,
                        &rest::with_rv(current.value, current.mod_revision),
                    );
                    let patched = patch::apply(kind, &view, &body)?;
                    let replicas = patched
                        .pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    scale(&api, &t, &name, replicas, precondition, dry_run).await?
                }
                Some(Sub::Status) | None => {
                    let res = t.res;
                    let f = move |cur: &Value| {
                        let v = patch::apply(kind, cur, &body)?;
                        check_fields(res, &v)?;
                        Ok(v)
                    };
                    rest::update_with(
                        &api,
                        t.res,
                        ns,
                        &name,
                        t.sub,
                        Change::Compute {
                            f: Box::new(f),
                            precondition,
                        },
                        dry_run,
                    )
                    .await?
                }
                Some(_) => return Err(ApiError::MethodNotAllowed),
            };
            Ok(json_response(StatusCode::OK, &v))
        }
        Verb::Delete if dry_run => {
            delete_options(params, &req.headers, &body)?;
            let name = t.name.clone().unwrap_or_default();
            let s = rest::get(&api, t.res, ns, &name).await?;
            Ok(json_response(
                StatusCode::OK,
                &rest::with_rv(s.value, s.mod_revision),
            ))
        }
        Verb::DeleteCollection if dry_run => Err(ApiError::BadRequest(
            "dryRun is not supported for deletecollection".into(),
        )),
        Verb::Delete => {
            let opts = delete_options(params, &req.headers, &body)?;
            let name = t.name.clone().unwrap_or_default();
            let (v, gone) = rest::delete(&api, t.res, ns, &name, &opts).await?;
            // As Kubernetes (handlers/delete.go): an object left in place
            // (finalizers, a graceful pod, a namespace emptying) is 200 with
            // the object; 202 only when the client asked for cascading with
            // `orphanDependents: false`, which old clients expect.
            let code = if !gone && opts.orphan_dependents == Some(false) {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            Ok(json_response(code, &v))
        }
        Verb::DeleteCollection => {
            let opts = delete_options(params, &req.headers, &body)?;
            let list = params.list_options(t.res)?;
            let v = rest::delete_collection(&api, t.res, ns, &list, &opts).await?;
            Ok(json_response(StatusCode::OK, &v))
        }
    }
}

/// A `DeleteOptions` body in any media type objects come in (client-go's
/// typed clients send protobuf), then the query's options over it.
fn delete_options(
    params: &Params,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<DeleteOptions, ApiError> {
    let mut opts = if body.iter().all(u8::is_ascii_whitespace) {
        DeleteOptions::default()
    } else {
        let v = read_object(headers, body).map_err(|e| match e {
            ApiError::BadRequest(m) => {
                ApiError::BadRequest(format!("error decoding DeleteOptions: {m}"))
            }
            other => other,
        })?;
        match v.get("kind").and_then(Value::as_str) {
            None | Some("DeleteOptions") => {}
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                    "the body is a {other}, not DeleteOptions"
                )))
            }
        }
        DeleteOptions::from_body(&v)?
    };
    let orphan = match params.get("orphanDependents") {
        None | Some("") => None,
        Some(o) => Some(matches!(o, "true" | "1")),
    };
    let policy = params.get("propagationPolicy").filter(|p| !p.is_empty());
    if policy.is_some() || orphan.is_some() {
        opts.set_propagation(policy, orphan)?;
    }
    if let Some(g) = params.get("gracePeriodSeconds") {
        opts.grace_period_seconds = Some(
            g.parse()
                .map_err(|_| ApiError::BadRequest(format!("invalid gracePeriodSeconds {g:?}")))?,
        );
    }
    Ok(opts)
}

async fn get_object(api: &ApiServer, t: &ResourceTarget) -> Result<Response, ApiError> {
    let name = t.name.clone().unwrap_or_default();
    let s = rest::get(api, t.res, t.namespace.as_deref(), &name).await?;
    let obj = rest::with_rv(s.value, s.mod_revision);
    let v = match t.sub {
        None | Some(Sub::Status) => obj,
        Some(Sub::Scale) => workload::scale_of(t.res.kind, &obj),
        Some(Sub::Log) | Some(Sub::Binding) => return Err(ApiError::MethodNotAllowed),
    };
    Ok(json_response(StatusCode::OK, &v))
}

async fn scale(
    api: &ApiServer,
    t: &ResourceTarget,
    name: &str,
    replicas: i64,
    precondition: Option<String>,
    dry_run: bool,
) -> Result<Value, ApiError> {
    if replicas < 0 {
        return Err(ApiError::invalid(
            "autoscaling",
            "Scale",
            name,
            vec![super::status::Cause::invalid(
                "spec.replicas",
                replicas,
                "must be greater than or equal to 0",
            )],
        ));
    }
    let f = move |cur: &Value| {
        let mut v = cur.clone();
        v["spec"]["replicas"] = json!(replicas);
        Ok(v)
    };
    let v = rest::update_with(
        api,
        t.res,
        t.namespace.as_deref(),
        name,
        None,
        Change::Compute {
            f: Box::new(f),
            precondition,
        },
        dry_run,
    )
    .await?;
    Ok(workload::scale_of(t.res.kind, &v))
}
