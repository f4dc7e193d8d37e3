//! The proxy as the agent runs it: the kube watcher source, the
//! bounded-frequency runner and the health-check server, in the calling
//! process's network namespace, counting into the caller's metrics and
//! reporting through its health probe. It must never flush the table on the
//! way out: rules stay until a new agent writes its desired state.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use capstan_serve::health::Probe;

use crate::healthcheck::HealthServer;
use crate::metrics::Metrics;
use crate::proxier::{Proxy, ProxyConfig};
use crate::runner::{self, RunnerConfig};

/// Parses `a.b.c.d/n` or `x::/n`.
pub fn parse_cidr(s: &str) -> Option<(std::net::IpAddr, u8)> {
    let (ip, len) = s.split_once('/')?;
    let ip: std::net::IpAddr = ip.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((ip, len))
}

/// Runs until `stop` completes. `probe` turns ready after the first sync
/// and stopped if the watchers or the runner end before `stop` (a panic):
/// the process's liveness check then fails and the pod is restarted.
pub async fn run(
    cfg: ProxyConfig,
    client: kube::Client,
    runner_cfg: RunnerConfig,
    metrics: Metrics,
    probe: Probe,
    stop: impl std::future::Future<Output = ()>,
) {
    let health = HealthServer::new(cfg.place.clone());
    let proxy = Arc::new(Mutex::new(Proxy::new(cfg).with_metrics(metrics)));
    let trigger = Arc::new(Notify::new());
    let halt = Arc::new(Notify::new());
    let mut source = tokio::spawn(crate::kube_source::run(
        client,
        proxy.clone(),
        trigger.clone(),
        halt.clone(),
    ));
    let mut run = tokio::spawn(runner::run(
        proxy,
        trigger,
        halt.clone(),
        runner_cfg,
        Some(health),
        Some(probe.clone()),
    ));
    tokio::pin!(stop);
    let ended = tokio::select! {
        _ = &mut stop => None,
        r = &mut source => Some(("watchers", r)),
        r = &mut run => Some(("runner", r)),
    };
    if let Some((what, r)) = ended {
        let error = match r {
            Ok(()) => "returned".to_string(),
            Err(e) => e.to_string(),
        };
        tracing::error!(what, %error, "proxy stopped before shutdown; rules stay as they are");
        probe.stopped();
        stop.await;
    }
    halt.notify_waiters();
    source.abort();
    run.abort();
}
