//! `/healthz`, `/livez` and `/readyz`, answered as kube-apiserver does
//! (`ok`, or a list of checks with `?verbose`). Ready means etcd answers and
//! the server is not shutting down; live means the process serves at all.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const ETCD_TIMEOUT: Duration = Duration::from_secs(2);

/// A readiness check beyond etcd: `Err(why)` while not ready.
pub type ReadyCheck = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

#[derive(Clone)]
pub struct Health {
    etcd: Option<etcd_client::Client>,
    shutting_down: Arc<AtomicBool>,
    /// Named checks `/readyz` also runs (kube-apiserver's post-start hooks).
    checks: Arc<std::sync::Mutex<Vec<(String, ReadyCheck)>>>,
}

impl Health {
    /// `etcd` None: no storage to check (tests of the edge alone).
    pub fn new(etcd: Option<etcd_client::Client>) -> Self {
        Health {
            etcd,
            shutting_down: Arc::new(AtomicBool::new(false)),
            checks: Default::default(),
        }
    }

    /// Adds a check `/readyz` runs under `name` (e.g.
    /// `poststarthook/rbac/bootstrap-roles`).
    pub fn add_check(&self, name: &str, check: ReadyCheck) {
        self.checks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((name.to_string(), check));
    }

    /// From now on `/readyz` fails, so load balancers stop sending work
    /// while in-flight requests finish.
    pub fn set_shutting_down(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/healthz", get(healthz))
            .route("/livez", get(healthz))
            .route("/readyz", get(readyz))
            .with_state(self.clone())
    }

    async fn etcd_ok(&self) -> Result<(), String> {
        let Some(client) = &self.etcd else {
            return Ok(());
        };
        let mut client = client.clone();
        match tokio::time::timeout(ETCD_TIMEOUT, client.status()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {ETCD_TIMEOUT:?}")),
        }
    }
}

async fn healthz(RawQuery(q): RawQuery) -> impl IntoResponse {
    report("healthz", &[("ping", Ok(()))], verbose(q.as_deref()))
}

async fn readyz(State(h): State<Health>, RawQuery(q): RawQuery) -> impl IntoResponse {
    let etcd = h.etcd_ok().await;
    if let Err(why) = &etcd {
        tracing::warn!(%why, "readyz: etcd check failed");
    }
    let shutdown = if h.shutting_down.load(Ordering::SeqCst) {
        Err("shutting down".to_string())
    } else {
        Ok(())
    };
    let mut checks: Vec<(String, Result<(), String>)> =
        vec![("ping".into(), Ok(())), ("etcd".into(), etcd)];
    let extra: Vec<(String, ReadyCheck)> =
        h.checks.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for (name, check) in extra {
        let r = check();
        if let Err(why) = &r {
            tracing::debug!(check = %name, %why, "readyz: not ready");
        }
        checks.push((name, r));
    }
    checks.push(("shutdown".into(), shutdown));
    report("readyz", &checks, verbose(q.as_deref()))
}

fn verbose(q: Option<&str>) -> bool {
    q.is_some_and(|q| {
        q.split('&')
            .any(|kv| kv == "verbose" || kv.starts_with("verbose="))
    })
}

/// kube-apiserver's format: failures are always listed, reasons withheld
/// (they are logged instead).
fn report<N: AsRef<str>>(
    what: &str,
    checks: &[(N, Result<(), String>)],
    verbose: bool,
) -> (StatusCode, String) {
    let failed = checks.iter().any(|(_, r)| r.is_err());
    if !failed && !verbose {
        return (StatusCode::OK, "ok".into());
    }
    let mut body = String::new();
    for (name, r) in checks {
        let name = name.as_ref();
        match r {
            Ok(()) => body.push_str(&format!("[+]{name} ok\n")),
            Err(_) => body.push_str(&format!("[-]{name} failed: reason withheld\n")),
        }
    }
    if failed {
        body.push_str(&format!("{what} check failed\n"));
        (StatusCode::INTERNAL_SERVER_ERROR, body)
    } else {
        body.push_str(&format!("{what} check passed\n"));
        (StatusCode::OK, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_formats() {
        assert_eq!(
            report("readyz", &[("ping", Ok(()))], false),
            (StatusCode::OK, "ok".into())
        );
        let (code, body) = report(
            "readyz",
            &[("ping", Ok(())), ("etcd", Err("x".into()))],
            false,
        );
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body,
            "[+]ping ok\n[-]etcd failed: reason withheld\nreadyz check failed\n"
        );
        assert!(verbose(Some("verbose")));
        assert!(verbose(Some("a=b&verbose=1")));
        assert!(!verbose(Some("verbosity=1")));
    }
}
