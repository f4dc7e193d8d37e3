//! The agent's HTTPS API (kubelet's port 10250): `/containerLogs/...` for
//! `kubectl logs` through the API server, and `/healthz`. TLS and client
//! certificates in `tls`/`authn`; it reads log files and asks the runtime
//! whether a container runs, and never changes anything on the node.

pub mod authn;
pub mod container_logs;
pub mod cri_log;
pub mod tls;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use authn::PeerIdentity;
use container_logs::LogError;

pub const DEFAULT_PORT: u16 = 10250;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether a container's attempt still runs (followers stop when not).
pub trait ContainerState: Send + Sync + 'static {
    fn running(
        &self,
        pod_uid: &str,
        container: &str,
        attempt: u32,
    ) -> impl Future<Output = bool> + Send;
}

#[derive(Clone, Debug)]
pub struct Options {
    pub addr: SocketAddr,
    pub serving: tls::Serving,
    /// CA of client certificates (the cluster CA); without it every
    /// request but `/healthz` is refused.
    pub client_ca: Option<PathBuf>,
    /// The kubelet's status records (`<root>/pod-status`).
    pub root_dir: PathBuf,
    pub pod_log_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

struct AppState<C> {
    opts: Options,
    containers: Arc<C>,
}

/// A bound, ready server: binding first lets the caller fail fast (port
/// taken, bad certificate) before anything else starts.
pub struct Server {
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    opts: Options,
}

pub async fn bind(opts: Options) -> Result<Server, ApiError> {
    let tls = tls::server_config(&opts.serving, opts.client_ca.as_deref())?;
    let listener = TcpListener::bind(opts.addr)
        .await
        .map_err(|source| ApiError::Listen {
            addr: opts.addr,
            source,
        })?;
    Ok(Server {
        listener,
        tls,
        opts,
    })
}

impl Server {
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `shutdown`; connections still open are dropped then.
    pub async fn run<C: ContainerState>(
        self,
        containers: Arc<C>,
        shutdown: impl Future<Output = ()>,
    ) {
        let addr = self.opts.addr;
        let app = router(Arc::new(AppState {
            opts: self.opts,
            containers,
        }));
        let acceptor = TlsAcceptor::from(self.tls);
        let mut conns = JoinSet::new();
        tracing::info!(%addr, "agent API serving HTTPS");
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        conns.spawn(connection(acceptor.clone(), tcp, peer, app.clone()));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "agent API accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        conns.shutdown().await;
    }
}

async fn connection(
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "agent API TLS handshake failed");
            return;
        }
        Err(_) => return,
    };
    let identity = match tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
        None => PeerIdentity::None,
        Some(der) => authn::from_der(der),
    };
    let svc = tower::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(identity.clone());
        app.clone().oneshot(req)
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(tls), TowerToHyperService::new(svc));
    if let Err(e) = conn.await {
        tracing::debug!(%peer, error = %e, "agent API connection ended with an error");
    }
}

fn router<C: ContainerState>(state: Arc<AppState<C>>) -> Router {
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
