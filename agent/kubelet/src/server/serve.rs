//! The agent's HTTPS API (kubelet's port 10250): `/containerLogs/...` for
//! `kubectl logs` through the API server, and `/healthz`. TLS and client
//! certificates in `tls`/`authn`; it reads log files and asks the runtime
//! whether a container runs, and never changes anything on the node.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::logs::access::ContainerState;
use crate::server::authn::{self, PeerIdentity};
use crate::server::options::{Options, ServerError};
use crate::server::routes::{router, AppState};
use crate::server::tls;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound, ready server: binding first lets the caller fail fast (port
/// taken, bad certificate) before anything else starts.
pub struct Server {
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    opts: Options,
}

pub async fn bind(opts: Options) -> Result<Server, ServerError> {
    let tls = tls::server_config(&opts.serving, opts.client_ca.as_deref())?;
    let listener = TcpListener::bind(opts.addr)
        .await
        .map_err(|source| ServerError::Listen {
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
