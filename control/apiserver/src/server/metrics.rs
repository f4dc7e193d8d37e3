//! Prometheus metrics of the API edge: requests by verb, resource and
//! code, and their latency (until the response head; a watch counts its
//! start). `/metrics` serves them to masters and `capstan:readers`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::status;
use crate::auth::{User, MASTERS_GROUP, READERS_GROUP};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    verb: &'static str,
    resource: String,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    verb: &'static str,
    resource: String,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, Histogram>,
    in_flight: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("capstan_apiserver");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "API requests by verb, resource and HTTP code",
            requests.clone(),
        );
        let latency = Family::<LatencyLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "request_duration_seconds",
            "Time to the response head, by verb and resource",
            latency.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "requests_in_flight",
            "Requests waiting for their response head",
            in_flight.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            in_flight,
        }
    }

    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/metrics", get(serve_metrics))
            .with_state(self.clone())
    }

    fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

async fn serve_metrics(State(m): State<Arc<Metrics>>, user: Option<Extension<User>>) -> Response {
    let allowed = user.is_some_and(|Extension(u)| {
        u.groups
            .iter()
            .any(|g| g == MASTERS_GROUP || g == READERS_GROUP)
    });
    if !allowed {
        return status::failure(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "forbidden: /metrics is for system:masters and capstan:readers",
        );
    }
    match m.encode() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Middleware: counts every request, including those refused before the
/// API (401s), so failed authentication shows up too.
pub async fn record(State(m): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let (verb, resource) = classify(req.method(), req.uri().path(), req.uri().query());
    let start = Instant::now();
    m.in_flight.inc();
    let resp = next.run(req).await;
    m.in_flight.dec();
    m.latency
        .get_or_create(&LatencyLabels {
            verb,
            resource: resource.clone(),
        })
        .observe(start.elapsed().as_secs_f64());
    m.requests
        .get_or_create(&RequestLabels {
            verb,
            resource,
            code: resp.status().as_u16(),
        })
        .inc();
    resp
}

/// Kubernetes' verb and resource of a request, from its path alone:
/// `/api/v1/namespaces/ns/pods/name/status` is ("get", "pods"). Paths that
/// are no resource keep an empty resource (bounded label values).
fn classify(method: &Method, path: &str, query: Option<&str>) -> (&'static str, String) {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest: &[&str] = match parts.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => &[],
    };
    let rest = match rest {
        ["namespaces", _ns, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    let (resource, named) = match rest {
        [] => (String::new(), false),
        [r] => (r.to_string(), false),
        [r, _name, sub @ ..] => {
            let mut res = r.to_string();
            if let Some(s) = sub.first() {
                res = format!("{res}/{s}");
            }
            (res, true)
        }
    };
    let watch = query.is_some_and(|q| {
        q.split('&')
            .any(|kv| kv == "watch=true" || kv == "watch=1" || kv == "watch")
    });
    let verb = match *method {
        Method::GET if watch => "watch",
        Method::GET if named || resource.is_empty() => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "other",
    };
    (verb, resource)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_paths() {
        let c = |m: Method, p: &str, q: Option<&str>| {
            let (v, r) = classify(&m, p, q);
            (v, r)
        };
        assert_eq!(
            c(Method::GET, "/api/v1/namespaces/default/pods", None),
            ("list", "pods".into())
        );
        assert_eq!(
            c(Method::GET, "/api/v1/pods", Some("watch=true")),
            ("watch", "pods".into())
        );
        assert_eq!(
            c(Method::GET, "/api/v1/namespaces/a/pods/p", None),
            ("get", "pods".into())
        );
        assert_eq!(
            c(Method::PATCH, "/api/v1/nodes/n1/status", None),
            ("patch", "nodes/status".into())
        );
        assert_eq!(
            c(Method::GET, "/api/v1/namespaces/kube-system", None),
            ("get", "namespaces".into())
        );
        assert_eq!(
            c(Method::GET, "/api/v1/namespaces", None),
            ("list", "namespaces".into())
        );
        assert_eq!(
            c(
                Method::DELETE,
                "/apis/apps/v1/namespaces/a/deployments",
                None
            ),
            ("deletecollection", "deployments".into())
        );
        assert_eq!(c(Method::GET, "/healthz", None), ("get", String::new()));
        assert_eq!(
            c(Method::POST, "/api/v1/namespaces/a/pods", None),
            ("create", "pods".into())
        );
    }

    #[test]
    fn encodes_with_prefix() {
        let m = Metrics::new();
        m.requests
            .get_or_create(&RequestLabels {
                verb: "get",
                resource: "pods".into(),
                code: 200,
            })
            .inc();
        let text = m.encode().unwrap();
        assert!(
            text.contains(
                "capstan_apiserver_requests_total{verb=\"get\",resource=\"pods\",code=\"200\"} 1"
            ),
            "{text}"
        );
    }
}
