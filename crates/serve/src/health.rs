//! A process's health endpoint, as kube-proxy's: `GET /healthz` answers 200
//! while every registered component is running, `GET /readyz` 200 once
//! every one is also ready (its own definition: the overlay has written
//! its subnet file, the proxy has programmed the node once). Components
//! hold a `Probe` and report through it; this module never decides for them.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

const STARTING: u8 = 0;
const READY: u8 = 1;
const STOPPED: u8 = 2;

/// One component's state, shared with the endpoint. Cloning shares it.
#[derive(Clone)]
pub struct Probe {
    name: &'static str,
    state: Arc<AtomicU8>,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Probe({}: {})", self.name, self.state_name())
    }
}

impl Probe {
    /// A probe no endpoint reads (for callers that serve no health).
    pub fn detached(name: &'static str) -> Probe {
        Probe {
            name,
            state: Arc::new(AtomicU8::new(STARTING)),
        }
    }

    /// The component has done what it needs to serve (stays until stopped).
    pub fn ready(&self) {
        let _ = self
            .state
            .compare_exchange(STARTING, READY, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// The component is no longer running: `/healthz` fails from now on.
    pub fn stopped(&self) {
        self.state.store(STOPPED, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.state.load(Ordering::SeqCst) == READY
    }

    fn state_name(&self) -> &'static str {
        match self.state.load(Ordering::SeqCst) {
            READY => "ready",
            STOPPED => "stopped",
            _ => "starting",
        }
    }
}

/// The process's probes; what the endpoint reports on.
#[derive(Clone, Default)]
pub struct Health {
    probes: Arc<Mutex<Vec<Probe>>>,
}

/// An answer of the endpoint: status and a body with one line per component.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: StatusCode,
    pub body: String,
}

impl Health {
    /// Registers a component (state: starting) and returns its probe.
    pub fn probe(&self, name: &'static str) -> Probe {
        let p = Probe::detached(name);
        if let Ok(mut probes) = self.probes.lock() {
            probes.push(p.clone());
        }
        p
    }

    fn answer(&self, ok: impl Fn(&Probe) -> bool) -> Answer {
        let probes = self.probes.lock().map(|p| p.clone()).unwrap_or_default();
        let all = probes.iter().all(&ok);
        let mut body = String::new();
        for p in &probes {
            body.push_str(&format!("{}: {}\n", p.name, p.state_name()));
        }
        body.push_str(if all { "ok\n" } else { "failed\n" });
        Answer {
            status: if all {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            },
            body,
        }
    }

    /// `/healthz`: no component has stopped.
    pub fn live(&self) -> Answer {
        self.answer(|p| p.state.load(Ordering::SeqCst) != STOPPED)
    }

    /// `/readyz`: every component is ready.
    pub fn ready(&self) -> Answer {
        self.answer(Probe::is_ready)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("health endpoint on {addr}")]
pub struct ServeError {
    addr: SocketAddr,
    #[source]
    source: std::io::Error,
}

/// Binds `addr` now (a taken port is an error at start) and returns the
/// server, which serves `/healthz` and `/readyz` until `shutdown`.
pub async fn bind(
    addr: SocketAddr,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<impl Future<Output = Result<(), ServeError>>, ServeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError { addr, source })?;
    let (live, ready) = (health.clone(), health);
    let app = Router::new()
        .route(
            "/healthz",
            get(move || {
                let a = live.live();
                async move { (a.status, a.body) }
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let a = ready.ready();
                async move { (a.status, a.body) }
            }),
        );
    tracing::info!(%addr, "health endpoint listening");
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

    #[test]
    fn live_until_stopped_ready_when_all_are() {
        let h = Health::default();
        let overlay = h.probe("overlay");
        let proxy = h.probe("proxy");
        assert_eq!(h.live().status, StatusCode::OK);
        assert_eq!(h.ready().status, StatusCode::SERVICE_UNAVAILABLE);
        overlay.ready();
        let r = h.ready();
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(r.body.contains("proxy: starting"), "{}", r.body);
        proxy.ready();
        assert_eq!(h.ready().status, StatusCode::OK);
        proxy.stopped();
        // A stopped component never reads as ready again.
        proxy.ready();
        let l = h.live();
        assert_eq!(l.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(l.body.contains("proxy: stopped"), "{}", l.body);
        assert_eq!(h.ready().status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn no_components_is_healthy() {
        let h = Health::default();
        assert_eq!(h.live().status, StatusCode::OK);
        assert_eq!(h.ready().status, StatusCode::OK);
    }
}
