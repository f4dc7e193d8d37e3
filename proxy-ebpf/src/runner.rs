//! The bounded-frequency runner: syncs when triggered, never more often
//! than the minimum interval (a burst of events becomes one sync), at
//! least every `periodic` (so the hourly full resync happens), and retries
//! a failed sync (as a full one) after the minimum interval. It must never
//! run two syncs at once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use capstan_serve::health::Probe;

use crate::healthcheck::HealthServer;
use crate::proxier::Proxy;

#[derive(Debug, Clone)]
pub struct RunnerConfig {
    pub min_interval: Duration,
    pub periodic: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            min_interval: Duration::from_secs(1),
            periodic: Duration::from_secs(60),
        }
    }
}

/// Runs until `stop` is notified. `probe` turns ready after the first
/// sync that programmed the node.
pub async fn run(
    proxy: Arc<Mutex<Proxy>>,
    trigger: Arc<Notify>,
    stop: Arc<Notify>,
    cfg: RunnerConfig,
    mut health: Option<HealthServer>,
    probe: Option<Probe>,
) {
    let mut last: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = trigger.notified() => {}
            _ = tokio::time::sleep(cfg.periodic) => {}
            _ = stop.notified() => return,
        }
        if let Some(t) = last {
            // Coalesce: everything arriving meanwhile joins this sync.
            tokio::time::sleep_until(t + cfg.min_interval).await;
        }
        last = Some(Instant::now());
        let p = proxy.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut p = p.lock().map_err(|_| "proxy state poisoned".to_string())?;
            let r = p.sync().map_err(|e| e.to_string());
            Ok::<_, String>((r, p.health_checks()))
        })
        .await;
        match result {
            Ok(Ok((Ok(report), checks))) => {
                if let (Some(_), Some(p)) = (report, probe.as_ref()) {
                    p.ready();
                }
                if let Some(h) = health.as_mut() {
                    for e in h.update(checks) {
                        tracing::warn!(error = %e, "health check node port");
                    }
                }
            }
            Ok(Ok((Err(e), _))) | Ok(Err(e)) => {
                tracing::warn!(error = %e, "proxy sync failed; retrying with a full sync");
                trigger.notify_one();
            }
            Err(e) => {
                tracing::warn!(error = %e, "proxy sync task failed");
                trigger.notify_one();
            }
        }
    }
}
