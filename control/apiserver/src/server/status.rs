//! Error answers in Kubernetes' shape: a `Status` object with reason and
//! code, so kubectl and kube-rs print them as they would kube-apiserver's.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;

pub fn failure(code: StatusCode, reason: &str, message: &str) -> Response {
    let status = Status {
        code: Some(i32::from(code.as_u16())),
        message: Some(message.to_string()),
        reason: Some(reason.to_string()),
        status: Some("Failure".into()),
        ..Status::default()
    };
    let mut body = serde_json::to_value(&status).unwrap_or_default();
    if let Some(obj) = body.as_object_mut() {
        obj.insert("kind".into(), "Status".into());
        obj.insert("apiVersion".into(), "v1".into());
        obj.entry("metadata")
            .or_insert_with(|| serde_json::json!({}));
    }
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
