//! Kubernetes `Status` errors: every failure of the REST layer becomes one
//! `ApiError`, answered as a `Status` object with Kubernetes' code and
//! reason. It never decides *whether* something failed, only how it reads.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// One field-level problem of an `Invalid` (422) answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueDuplicate`, ...
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}

impl Cause {
    pub fn required(field: impl Into<String>) -> Self {
        Cause {
            reason: "FieldValueRequired",
            field: field.into(),
            message: "Required value".into(),
        }
    }
    pub fn invalid(field: impl Into<String>, value: impl std::fmt::Display, why: &str) -> Self {
        Cause {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: \"{value}\": {why}"),
        }
    }
    pub fn duplicate(field: impl Into<String>, value: impl std::fmt::Display) -> Self {
        Cause {
            reason: "FieldValueDuplicate",
            field: field.into(),
            message: format!("Duplicate value: \"{value}\""),
        }
    }
    pub fn not_supported(
        field: impl Into<String>,
        value: impl std::fmt::Display,
        ok: &[&str],
    ) -> Self {
        Cause {
            reason: "FieldValueNotSupported",
            field: field.into(),
            message: format!(
                "Unsupported value: \"{value}\": supported values: {}",
                ok.iter()
                    .map(|s| format!("\"{s}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
    pub fn forbidden(field: impl Into<String>, why: impl Into<String>) -> Self {
        Cause {
            reason: "FieldValueForbidden",
            field: field.into(),
            message: format!("Forbidden: {}", why.into()),
        }
    }
}

/// The group/kind/name an error is about, as `Status.details` carries it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subject {
    pub group: String,
    /// The plural resource name ("pods"), which Kubernetes puts in `kind`.
    pub kind: String,
    pub name: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("Unauthorized")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{kind} \"{name}\" not found", kind = qualified(.0), name = .0.name)]
    NotFound(Subject),
    #[error("the server could not find the requested resource")]
    NoRoute,
    #[error("{kind} \"{name}\" already exists", kind = qualified(.0), name = .0.name)]
    AlreadyExists(Subject),
    #[error("Operation cannot be fulfilled on {kind} \"{name}\": {msg}", kind = qualified(.subject), name = .subject.name)]
    Conflict { subject: Subject, msg: String },
    #[error("{0}")]
    Gone(String),
    #[error("{kind} \"{name}\" is invalid: {}", summary(.causes), kind = qualified(.subject), name = .subject.name)]
    Invalid {
        /// Here `kind` is the object's Kind ("Pod"), as Kubernetes does.
        subject: Subject,
        causes: Vec<Cause>,
    },
    #[error(
        "the body of the request was in an unknown format - accepted media types include: {0}"
    )]
    UnsupportedMediaType(String),
    #[error("the request is too large: limit is {0} bytes")]
    TooLarge(usize),
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    #[error("{0}")]
    Timeout(String),
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

fn qualified(s: &Subject) -> String {
    if s.group.is_empty() {
        s.kind.clone()
    } else {
        format!("{}.{}", s.kind, s.group)
    }
}

fn summary(causes: &[Cause]) -> String {
    let parts: Vec<String> = causes
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect();
    if parts.len() == 1 {
        parts[0].clone()
    } else {
        format!("[{}]", parts.join(", "))
    }
}

impl ApiError {
    pub fn code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::AlreadyExists(_) | ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::NotFound(_) | ApiError::NoRoute => "NotFound",
            ApiError::AlreadyExists(_) => "AlreadyExists",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::Gone(_) => "Expired",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::TooLarge(_) => "RequestEntityTooLarge",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            ApiError::Timeout(_) => "Timeout",
            ApiError::Unavailable(_) => "ServiceUnavailable",
            ApiError::Internal(_) => "InternalError",
        }
    }

    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        ApiError::NotFound(Subject {
            group: group.into(),
            kind: plural.into(),
            name: name.into(),
        })
    }

    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        ApiError::Invalid {
            subject: Subject {
                group: group.into(),
                kind: kind.into(),
                name: name.into(),
            },
            causes,
        }
    }

    /// The `Status` object Kubernetes would answer with.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code().as_u16(),
        });
        let details = match self {
            ApiError::NotFound(s) | ApiError::AlreadyExists(s) => Some(subject_details(s)),
            ApiError::Conflict { subject, .. } => Some(subject_details(subject)),
            ApiError::Invalid { subject, causes } => {
                let mut d = subject_details(subject);
                d["causes"] = causes
                    .iter()
                    .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                    .collect();
                Some(d)
            }
            _ => None,
        };
        if let Some(d) = details {
            status["details"] = d;
        }
        status
    }
}

fn subject_details(s: &Subject) -> Value {
    let mut d = json!({"name": s.name, "kind": s.kind});
    if !s.group.is_empty() {
        d["group"] = json!(s.group);
    }
    d
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.code().is_server_error() {
            tracing::warn!(error = %self, code = self.code().as_u16(), "request failed");
        }
        let body = self.to_status().to_string();
        (
            self.code(),
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

/// The `Status` a successful delete of something without a body answers.
pub fn success_status(details: Value) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_status_carries_causes() {
        let e = ApiError::invalid("", "Pod", "x", vec![Cause::required("spec.containers")]);
        let s = e.to_status();
        assert_eq!(s["code"], 422);
        assert_eq!(s["reason"], "Invalid");
        assert_eq!(s["details"]["causes"][0]["field"], "spec.containers");
        assert_eq!(
            s["message"],
            "Pod \"x\" is invalid: spec.containers: Required value"
        );
    }

    #[test]
    fn not_found_names_group() {
        let e = ApiError::not_found("apps", "deployments", "web");
        assert_eq!(e.to_string(), "deployments.apps \"web\" not found");
        assert_eq!(e.to_status()["details"]["group"], "apps");
    }
}
