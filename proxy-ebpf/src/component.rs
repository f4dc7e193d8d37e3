//! The proxy as the agent runs it: the kube watcher source, the
//! bounded-frequency runner and the health-check server, in the calling
//! process's network namespace. It must never flush the table on the way
//! out: rules stay until a new agent writes its desired state.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::healthcheck::HealthServer;
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

/// Runs until `stop` completes.
pub async fn run(
    cfg: ProxyConfig,
    client: kube::Client,
    runner_cfg: RunnerConfig,
    stop: impl std::future::Future<Output = ()>,
) {
    let health = HealthServer::new(cfg.place.clone());
    let proxy = Arc::new(Mutex::new(Proxy::new(cfg)));
    let trigger = Arc::new(Notify::new());
    let halt = Arc::new(Notify::new());
    let source = tokio::spawn(crate::kube_source::run(
        client,
        proxy.clone(),
        trigger.clone(),
        halt.clone(),
    ));
    let run = tokio::spawn(runner::run(
        proxy,
        trigger,
        halt.clone(),
        runner_cfg,
        Some(health),
    ));
    stop.await;
    halt.notify_waiters();
    source.abort();
    run.abort();
}
