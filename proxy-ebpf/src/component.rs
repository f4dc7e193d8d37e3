//! The proxy as the agent runs it: the kube watcher source, the
//! bounded-frequency runner and the health-check server, in the calling
//! process's network namespace. It must never flush the table on the way
//! out: rules stay until a new agent writes its desired state.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::healthcheck::HealthServer;
use crate::proxier::{Proxy, ProxyConfig};
use crate::runner::{self, RunnerConfig};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error("no kubeconfig given and none found (in-cluster or $KUBECONFIG): {0}")]
    Infer(String),
    #[error("kube client: {0}")]
    Client(#[source] kube::Error),
}

/// A client from `kubeconfig`, or inferred (in-cluster, $KUBECONFIG).
pub async fn client(kubeconfig: Option<&std::path::Path>) -> Result<kube::Client, ClientError> {
    // One TLS crypto provider for the process (rustls needs it chosen).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cfg = match kubeconfig {
        Some(path) => {
            let bad = |e: &dyn std::fmt::Display| ClientError::Kubeconfig {
                path: path.display().to_string(),
                message: e.to_string(),
            };
            let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| bad(&e))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| bad(&e))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| ClientError::Infer(e.to_string()))?,
    };
    kube::Client::try_from(cfg).map_err(ClientError::Client)
}

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
