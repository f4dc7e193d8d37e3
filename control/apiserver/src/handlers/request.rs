//! Reading a request: query parameters (selectors, paging, watch options),
//! the body within the size limit, and its media type (JSON, YAML or
//! Kubernetes protobuf, which becomes JSON here; the rest is 415).

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use axum::http::Method;
use axum::http::{header, HeaderMap};
use bytes::Bytes;
use serde_json::Value;

use crate::auth::User;
use crate::protobuf;
use crate::resources::Resource;
use crate::rest::{self, ListOptions};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::watch::WatchOptions;
use crate::ApiServer;

pub struct Params(pub HashMap<String, String>);

impl Params {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }

    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1"))
    }

    fn int(&self, k: &str) -> Result<Option<i64>, ApiError> {
        match self.get(k) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::BadRequest(format!("invalid {k} {v:?}: not an integer"))),
        }
    }

    pub fn list_options(&self, res: &Resource) -> Result<ListOptions, ApiError> {
        let label = LabelSelector::parse(self.get("labelSelector").unwrap_or_default())
            .map_err(|e| ApiError::BadRequest(format!("labelSelector: {e}")))?;
        let fields = rest::selectable_fields(res);
        let field = FieldSelector::parse(self.get("fieldSelector").unwrap_or_default(), &fields)
            .map_err(|e| ApiError::BadRequest(format!("fieldSelector: {e}")))?;
        let limit = self.int("limit")?.unwrap_or(0).max(0);
        let continue_token = self
            .get("continue")
            .filter(|c| !c.is_empty())
            .map(str::to_string);
        Ok(ListOptions {
            label,
            field,
            limit,
            continue_token,
        })
    }

    pub fn watch_options(&self, res: &Resource) -> Result<WatchOptions, ApiError> {
        let list = self.list_options(res)?;
        let resource_version = self.int("resourceVersion")?;
        let timeout = self
            .int("timeoutSeconds")?
            .filter(|t| *t > 0)
            .map(|t| Duration::from_secs(t as u64));
        Ok(WatchOptions {
            list,
            resource_version,
            bookmarks: self.flag("allowWatchBookmarks"),
            timeout,
            as_table: None,
            send_initial_events: self.flag("sendInitialEvents"),
        })
    }
}

/// The body, refused with 413 beyond the configured limit.
pub async fn read_body(
    api: &ApiServer,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, ApiError> {
    let max = api.config.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(ApiError::TooLarge(max));
    }
    axum::body::to_bytes(body, max)
        .await
        .map_err(|_| ApiError::TooLarge(max))
}

const ACCEPTED: &str = "application/json, application/yaml, application/vnd.kubernetes.protobuf";

/// A JSON, YAML or protobuf object body, as JSON.
pub fn read_object(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let base = ct.split(';').next().unwrap_or_default().trim();
    let v: Value = match base {
        "application/json" | "" => serde_json::from_slice(body).map_err(|e| {
            ApiError::BadRequest(format!("error decoding the request body as JSON: {e}"))
        })?,
        "application/yaml" => serde_yaml::from_slice(body).map_err(|e| {
            ApiError::BadRequest(format!("error decoding the request body as YAML: {e}"))
        })?,
        // kubectl's `create <kind>` generators send protobuf.
        protobuf::MEDIA_TYPE => protobuf::decode(body).map_err(|e| {
            ApiError::BadRequest(format!("error decoding the request body as protobuf: {e}"))
        })?,
        _ => return Err(ApiError::UnsupportedMediaType(ACCEPTED.into())),
    };
    if !v.is_object() {
        return Err(ApiError::BadRequest(
            "the request body must be an object".into(),
        ));
    }
    Ok(v)
}

/// The parts of a request the verbs need, taken apart once by the route.
pub struct Req {
    pub method: Method,
    pub headers: HeaderMap,
    pub params: Params,
    pub user: Option<User>,
    pub body: Body,
}
