//! Calls to the subnet store with a deadline, retried with capped
//! exponential backoff while they fail transiently, and the store's
//! reachability logged once per change of state. No overlay decisions here.

use std::future::Future;
use std::time::Duration;

use crate::metrics;
use crate::subnet::lease::StoreError;

pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(5);
pub(super) const BACKOFF_MIN: Duration = Duration::from_millis(200);
pub(super) const BACKOFF_MAX: Duration = Duration::from_secs(3);

pub(super) fn transient(e: &StoreError) -> bool {
    matches!(e, StoreError::Unavailable { .. })
}

pub(super) fn timeout_err(op: &'static str) -> StoreError {
    StoreError::Unavailable {
        op,
        source: "timed out".into(),
    }
}

pub(super) async fn timed<T>(
    op: &'static str,
    f: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(CALL_TIMEOUT, f)
        .await
        .unwrap_or_else(|_| Err(timeout_err(op)))
}

/// Logs the subnet store's reachability (etcd, or the API server in kube
/// mode) once per change of state, never per retry.
pub(super) struct EtcdHealth {
    up: bool,
    errors: prometheus_client::metrics::counter::Counter,
}

impl EtcdHealth {
    pub(super) fn new(m: &metrics::Metrics) -> Self {
        EtcdHealth {
            up: true,
            errors: m.store_errors.clone(),
        }
    }

    pub(super) fn down(&mut self, e: &dyn std::fmt::Display) {
        self.errors.inc();
        if self.up {
            tracing::warn!(error = %e, "subnet store unreachable; dataplane keeps its current state; retrying with backoff");
            self.up = false;
        }
    }
    pub(super) fn up(&mut self, what: &str) {
        if !self.up {
            tracing::info!(what, "subnet store reachable again");
            self.up = true;
        }
    }
}

/// Retries `f` while it fails transiently, with capped exponential backoff.
pub(super) async fn until_ok<T, F, Fut>(
    health: &mut EtcdHealth,
    op: &'static str,
    mut f: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut backoff = BACKOFF_MIN;
    loop {
        match timed(op, f()).await {
            Ok(v) => {
                health.up(op);
                return Ok(v);
            }
            Err(e) if transient(&e) => {
                health.down(&e);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            Err(e) => return Err(e),
        }
    }
}
