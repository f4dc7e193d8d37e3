//! Prometheus exposition: a registry's text encoding with the OpenMetrics
//! content type, and the one `GET /metrics` endpoint a process serves it
//! on. Components register their own metrics next to the code they
//! measure; this module never registers any.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;

/// Registers each metric of a component under its prefix, as a table of
/// `"name": "help" => metric` (each cloned: prometheus-client metrics are
/// shared handles). Why a macro: `Registry::register` takes `impl Metric`,
/// and prometheus-client has no boxed form that is `Send + Sync`, so a list
/// of different metric types cannot be a slice.
#[macro_export]
macro_rules! register_metrics {
    ($registry:expr, $prefix:literal, { $($name:literal : $help:literal => $metric:expr),* $(,)? }) => {{
        let r = $registry.sub_registry_with_prefix($prefix);
        $( r.register($name, $help, $metric.clone()); )*
    }};
}

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `registry` in the text format, as an HTTP response.
pub fn response(registry: &Registry) -> Response {
    let mut out = String::new();
    match prometheus_client::encoding::text::encode(&mut out, registry) {
        Ok(()) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], out).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("metrics endpoint on {addr}: {source}")]
pub struct ServeError {
    addr: SocketAddr,
    #[source]
    source: std::io::Error,
}

/// Binds `addr` now (so a taken port is an error at start) and returns the
/// server, which serves `GET /metrics` until `shutdown` resolves.
pub async fn bind(
    addr: SocketAddr,
    registry: Registry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<impl Future<Output = Result<(), ServeError>>, ServeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError { addr, source })?;
    let registry = Arc::new(registry);
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let registry = registry.clone();
            async move { response(&registry) }
        }),
    );
    tracing::info!(%addr, "metrics endpoint listening");
    Ok(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|source| ServeError { addr, source })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    #[test]
    fn encodes_with_the_openmetrics_type() {
        let mut reg = Registry::default();
        let c = Counter::<u64>::default();
        crate::register_metrics!(reg, "capstan_test", { "things": "Things seen" => c });
        c.inc();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &reg).expect("encode");
        assert!(text.contains("capstan_test_things_total 1"), "{text}");
        let r = response(&reg);
        assert_eq!(
            r.headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some(CONTENT_TYPE)
        );
    }
}
