//! The control plane's own API clients — the scheduler and the
//! controllers — started beside the API server in one process. They reach
//! the server over HTTPS on loopback with the admin credentials `init`
//! wrote, exactly like an external kube-scheduler would; they never get a
//! handle on etcd.

use std::path::Path;
use std::time::Duration;

use crate::{scheduler, Options};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Client(#[from] capstan_k8s::ClientError),
    #[error("unknown controller {0:?} (known: {known})", known = CONTROLLERS.join(", "))]
    UnknownController(String),
}

/// Names for `--controllers`, as kube-controller-manager spells them.
pub const CONTROLLERS: &[&str] = &[
    "replicaset",
    "replicationcontroller",
    "deployment",
    "daemonset",
    "endpoint",
    "endpointslice",
    "nodelifecycle",
    "garbagecollector",
    "serviceaccount",
    "root-ca-cert-publisher",
];

/// `--controllers` in kube-controller-manager's syntax: `*` for all,
/// `name` to enable, `-name` to disable.
pub fn controller_options(list: &[String]) -> Result<Options, ClientError> {
    let mut on: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    for item in list {
        let item = item.trim();
        if item == "*" {
            on.extend(CONTROLLERS.iter().copied());
            continue;
        }
        let (enable, name) = match item.strip_prefix('-') {
            Some(n) => (false, n),
            None => (true, item),
        };
        let Some(known) = CONTROLLERS.iter().find(|k| **k == name) else {
            return Err(ClientError::UnknownController(name.to_string()));
        };
        if enable {
            on.insert(known);
        } else {
            on.remove(known);
        }
    }
    let has = |n: &str| on.contains(n);
    Ok(Options {
        replicas: has("replicaset") || has("replicationcontroller"),
        deployments: has("deployment"),
        daemonsets: has("daemonset"),
        endpoints: has("endpoint") || has("endpointslice"),
        node_lifecycle: has("nodelifecycle"),
        garbage_collector: has("garbagecollector"),
        node_monitor_grace: crate::node_lifecycle::DEFAULT_GRACE,
        allocate_node_cidrs: None,
        service_accounts: has("serviceaccount"),
        root_ca_publisher: has("root-ca-cert-publisher"),
        root_ca: None,
    })
}

/// A client for `server` with the credentials in `kubeconfig` (watches
/// stay open for minutes, hence the long read timeout).
pub async fn loopback_client(kubeconfig: &Path, server: &str) -> Result<kube::Client, ClientError> {
    let opts = capstan_k8s::ClientOptions {
        kubeconfig: Some(kubeconfig.to_path_buf()),
        server: Some(server.to_string()),
        read_timeout: Some(Duration::from_secs(300)),
    };
    Ok(capstan_k8s::client(&opts).await?)
}

/// Runs the enabled clients until `shutdown` resolves; a client that stops
/// with an error is logged and restarted after a pause (the API server
/// may still be starting).
pub async fn run(
    client: kube::Client,
    run_scheduler: bool,
    controllers: Options,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    if run_scheduler {
        let c = client.clone();
        tasks.spawn(async move {
            loop {
                match scheduler::run(
                    c.clone(),
                    scheduler::Options::default(),
                    std::future::pending(),
                )
                .await
                {
                    Ok(()) => return,
                    Err(e) => tracing::warn!(error = %e, "scheduler stopped; restarting"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
    if controllers.any() {
        let c = client.clone();
        tasks.spawn(async move {
            loop {
                match crate::run(c.clone(), controllers.clone(), std::future::pending()).await {
                    Ok(()) => return,
                    Err(e) => tracing::warn!(error = %e, "controllers stopped; restarting"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
    shutdown.await;
    tasks.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_lists_like_kube_controller_manager() {
        let all = controller_options(&["*".into()]).unwrap();
        assert!(all.replicas && all.deployments && all.garbage_collector);
        let some = controller_options(&["*".into(), "-nodelifecycle".into()]).unwrap();
        assert!(!some.node_lifecycle && some.daemonsets);
        let one = controller_options(&["deployment".into()]).unwrap();
        assert!(one.deployments && !one.replicas && !one.service_accounts);
        assert!(all.service_accounts && all.root_ca_publisher);
        let no_ca = controller_options(&["*".into(), "-root-ca-cert-publisher".into()]).unwrap();
        assert!(!no_ca.root_ca_publisher && no_ca.service_accounts);
        assert!(matches!(
            controller_options(&["bogus".into()]),
            Err(ClientError::UnknownController(_))
        ));
    }
}
