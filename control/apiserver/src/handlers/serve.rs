//! One resource request end to end: dry-run and field validation, the
//! names and pod node the authorizer needs, authorization, then the verb
//! (`rest`) and its response — JSON, a table, a watch stream or `Status`.
//! The dispatch over the verbs stays one match, so each arm reads in the
//! order Kubernetes' handlers apply it.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use super::authorize::{attributes, authorize, verb_of};
use super::request::{read_body, read_object, Params, Req};
use super::response::{accept, json_response};
use super::target::ResourceTarget;
use super::{node_refs, pod_node};
use crate::auth::Verb;
use crate::patch::{self, PatchKind};
use crate::registry::workload;
use crate::resources::Sub;
use crate::rest::{self, Change, DeleteOptions};
use crate::status::ApiError;
use crate::{token_request, watch, ApiServer};

pub async fn serve(api: Arc<ApiServer>, t: ResourceTarget, req: Req) -> Result<Response, ApiError> {
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
    let guard = super::rbac_guard::guard(&api, req.user.as_ref(), t.res, ns);
    let strict = params.get("fieldValidation") == Some("Strict");
    let check_fields =
        move |res: &'static crate::resources::Resource, v: &Value| -> Result<(), ApiError> {
            if strict {
                let mut v = v.clone();
                crate::registry::meta::type_meta(res, &mut v)?;
                crate::registry::strict(res, &v)?;
            }
            Ok(())
        };
    match verb {
        Verb::Get if t.sub == Some(Sub::Log) => {
            let name = t.name.clone().unwrap_or_default();
            crate::logs::proxy(&api, ns, &name, &params.0).await
        }
        Verb::Get if t.sub.is_none() && crate::table::wanted(accept(&req.headers)) => {
            let name = t.name.clone().unwrap_or_default();
            let s = rest::get(&api, t.res, ns, &name).await?;
            let obj = rest::with_rv(s.value, s.mod_revision);
            let include = params
                .get("includeObject")
                .unwrap_or("PartialObjectMetadata");
            let tbl = crate::table::table(t.res.kind, std::slice::from_ref(&obj), None, include);
            Ok(json_response(StatusCode::OK, &tbl))
        }
        Verb::Get => get_object(&api, &t).await,
        Verb::List => {
            let opts = params.list_options(t.res)?;
            let v = rest::list(&api, t.res, ns, &opts).await?;
            if crate::table::wanted(accept(&req.headers)) {
                let items = v["items"].as_array().cloned().unwrap_or_default();
                let include = params
                    .get("includeObject")
                    .unwrap_or("PartialObjectMetadata");
                let tbl = crate::table::table(t.res.kind, &items, v.get("metadata"), include);
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
            if crate::table::wanted(accept(&req.headers)) {
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
            if t.sub == Some(Sub::Token) {
                let user = req.user.as_ref().ok_or(ApiError::Unauthorized)?;
                let issued =
                    token_request::create(&api, user, ns.unwrap_or_default(), &name, obj).await?;
                return Ok(issued.into_response());
            }
            check_fields(t.res, &obj)?;
            if let Some(g) = &guard {
                g(None, &obj)?;
            }
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
                    let change = match guard {
                        // The check needs the stored object: the same
                        // replacement, computed from it.
                        Some(g) => {
                            let precondition = obj
                                .pointer("/metadata/resourceVersion")
                                .and_then(Value::as_str)
                                .filter(|s| !s.is_empty())
                                .map(str::to_string);
                            let f = move |cur: &Value| {
                                g(Some(cur), &obj)?;
                                Ok(obj.clone())
                            };
                            Change::Compute {
                                f: Box::new(f),
                                precondition,
                            }
                        }
                        None => Change::Replace(obj),
                    };
                    rest::update_with(&api, t.res, ns, &name, t.sub, change, dry_run).await?
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
                        if let Some(g) = &guard {
                            g(Some(cur), &v)?;
                        }
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
        // No request maps to these (`verb_of`); they exist for rules.
        Verb::Bind
        | Verb::Escalate
        | Verb::Impersonate
        | Verb::Use
        | Verb::Approve
        | Verb::Sign
        | Verb::Proxy => Err(ApiError::MethodNotAllowed),
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
        Some(Sub::Log | Sub::Binding | Sub::Token) => return Err(ApiError::MethodNotAllowed),
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
            vec![crate::status::Cause::invalid(
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
