//! SubjectAccessReview and LocalSubjectAccessReview (authorization.k8s.io/v1):
//! "may this user do that?", asked about anyone (`spec.user`, `groups`,
//! `uid`, taken as given, as Kubernetes does) and answered by the same
//! `Authorizer` call a request gets. Create-only, never stored; creating
//! one needs `create` on the review resource (cluster-admin, or `admin`
//! in its namespace for the local kind).

use k8s_openapi::api::authorization::v1::{
    LocalSubjectAccessReview, SelfSubjectAccessReviewSpec, SubjectAccessReview,
    SubjectAccessReviewSpec,
};
use serde_json::Value;

use crate::auth::User;
use crate::reviews::{decide, decode, invalid, status_of, Review};
use crate::status::{ApiError, Cause};
use crate::ApiServer;

/// The reviewed user and the question, as a self review would ask it.
fn question(spec: &SubjectAccessReviewSpec) -> (User, SelfSubjectAccessReviewSpec) {
    let user = User {
        name: spec.user.clone().unwrap_or_default(),
        groups: spec.groups.clone().unwrap_or_default(),
        uid: spec.uid.clone().filter(|u| !u.is_empty()),
    };
    let q = SelfSubjectAccessReviewSpec {
        resource_attributes: spec.resource_attributes.clone(),
        non_resource_attributes: spec.non_resource_attributes.clone(),
    };
    (user, q)
}

fn answer(
    api: &ApiServer,
    r: &Review,
    spec: &SubjectAccessReviewSpec,
) -> Result<k8s_openapi::api::authorization::v1::SubjectAccessReviewStatus, ApiError> {
    let no_user = spec.user.as_deref().unwrap_or_default().is_empty()
        && spec.groups.as_ref().is_none_or(Vec::is_empty);
    if no_user {
        return Err(invalid(
            r,
            Cause::invalid(
                "spec.user",
                "",
                "at least one of user or group must be specified",
            ),
        ));
    }
    let (user, q) = question(spec);
    let d = decide(&*api.authorizer, &user, &q, None, false).map_err(|c| invalid(r, c))?;
    Ok(status_of(d))
}

/// The review back with its status.
pub fn review(
    api: &ApiServer,
    r: &Review,
    ns: Option<&str>,
    body: Value,
) -> Result<Value, ApiError> {
    match r.kind {
        "LocalSubjectAccessReview" => local(api, r, ns.unwrap_or_default(), body),
        _ => cluster(api, r, body),
    }
}

fn cluster(api: &ApiServer, r: &Review, body: Value) -> Result<Value, ApiError> {
    let mut rev: SubjectAccessReview = decode(r, body)?;
    rev.status = Some(answer(api, r, &rev.spec)?);
    serde_json::to_value(rev).map_err(|e| ApiError::Internal(e.to_string()))
}

fn local(api: &ApiServer, r: &Review, ns: &str, body: Value) -> Result<Value, ApiError> {
    let mut rev: LocalSubjectAccessReview = decode(r, body)?;
    if rev.spec.non_resource_attributes.is_some() {
        return Err(invalid(
            r,
            Cause::invalid(
                "spec.nonResourceAttributes",
                "",
                "disallowed on this kind of request",
            ),
        ));
    }
    let asked = rev
        .spec
        .resource_attributes
        .as_ref()
        .and_then(|ra| ra.namespace.clone())
        .unwrap_or_default();
    if asked != ns {
        return Err(ApiError::BadRequest(format!(
            "spec.resourceAttributes.namespace must match namespace: {ns}"
        )));
    }
    rev.metadata.namespace = Some(ns.to_string());
    rev.status = Some(answer(api, r, &rev.spec)?);
    serde_json::to_value(rev).map_err(|e| ApiError::Internal(e.to_string()))
}
