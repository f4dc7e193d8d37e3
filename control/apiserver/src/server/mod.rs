//! The HTTPS edge of capstan-control: TLS (with optional client
//! certificates), authentication of every request into an `auth::User`,
//! health endpoints, Prometheus metrics, and graceful shutdown. It never
//! decides what a user may do to an object: the API server asks the
//! authorizer for that.

pub mod authn;
pub mod etcd;
pub mod health;
pub mod listener;
pub mod metrics;
pub mod status;
pub mod stream_end;

use std::sync::Arc;

use axum::Router;

pub use authn::Authenticator;
pub use health::Health;
pub use listener::serve;
pub use metrics::Metrics;

/// The whole application: health endpoints (public, as Kubernetes'
/// `system:public-info-viewer` allows), `/metrics`, and the API, behind
/// authentication and with every request counted.
pub fn app(
    api: Router,
    authn: Arc<Authenticator>,
    health: Health,
    metrics: Arc<Metrics>,
) -> Router {
    health
        .router()
        .merge(metrics.router())
        .merge(api)
        .layer(axum::middleware::from_fn_with_state(
            authn,
            authn::authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            metrics::record,
        ))
}
