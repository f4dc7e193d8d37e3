//! OpenAPI documents for kubectl: `/openapi/v2` and `/openapi/v3[/<gv>]`.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::handlers::json_response;
use super::status::ApiError;
use axum::response::IntoResponse;

pub async fn v2() -> Response {
    json_response(
        StatusCode::OK,
        &json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.33.0"}, "paths": {}, "definitions": {}}),
    )
}

pub async fn v3_index() -> Response {
    json_response(StatusCode::OK, &json!({"paths": {}}))
}

pub async fn v3_doc(Path(_gv): Path<String>) -> Response {
    ApiError::NoRoute.into_response()
}
