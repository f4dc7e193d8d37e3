//! The agent API's routes: `/healthz` open to all, `/containerLogs/...`
//! behind client-certificate authentication. Reads only; never changes
//! anything on the node.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::logs::access::ContainerState;
use crate::server::authn::{self, PeerIdentity};
use crate::server::container_logs::{self, LogError};
use crate::server::options::Options;

pub(crate) struct AppState<C> {
    pub(crate) opts: Options,
    pub(crate) containers: Arc<C>,
}

pub(crate) fn router<C: ContainerState>(state: Arc<AppState<C>>) -> Router {
    let guarded = Router::new()
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_logs_handler::<C>),
        )
        .layer(axum::middleware::from_fn(authenticate));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(guarded)
        .with_state(state)
}

fn text(status: StatusCode, msg: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain")], msg + "\n").into_response()
}

async fn authenticate(req: Request, next: Next) -> Response {
    match authn::decide(req.extensions().get::<PeerIdentity>()) {
        Ok(user) => {
            tracing::debug!(user = %user.name, path = %req.uri().path(), "agent API request");
            next.run(req).await
        }
        Err((code, msg)) => text(
            StatusCode::from_u16(code).unwrap_or(StatusCode::UNAUTHORIZED),
            msg,
        ),
    }
}

async fn container_logs_handler<C: ContainerState>(
    State(state): State<Arc<AppState<C>>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let found = container_logs::parse_query(&query, jiff::Timestamp::now()).and_then(|req| {
        container_logs::locate(
            &state.opts.root_dir,
            &state.opts.pod_log_dir,
            &namespace,
            &pod,
            &container,
            req.previous,
        )
        .map(|loc| (req, loc))
    });
    let (req, loc) = match found {
        Ok(v) => v,
        Err(e) => {
            let code = match e {
                LogError::PodNotFound { .. } => StatusCode::NOT_FOUND,
                _ => StatusCode::BAD_REQUEST,
            };
            return text(code, e.to_string());
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(container_logs::stream(
        loc,
        req,
        state.containers.clone(),
        tx,
    ));
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain")],
        Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
    )
        .into_response()
}
