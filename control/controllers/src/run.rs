//! The controller loop: one set of reflectors, and every enabled
//! controller's pass on any change, coalescing bursts. It owns no
//! controller logic; each pass lives in its controller's module.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Namespace, Node, Pod, ReplicationController, Service, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::reflector::Store;
use tokio::sync::Notify;

use crate::service_account;
use crate::{daemonset, deployment, endpoints_sync, gc, namespace, node_ipam, root_ca};
use crate::{node_lifecycle, replicas, Options};
use capstan_k8s::{pace, spawn_reflector};
use kube::runtime::watcher::Config;

/// Passes start at most this often: controllers converge in steps of
/// seconds, and a pass per pod event cost a core during bursts.
const MIN_PASS_GAP: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("initial list of {what} never completed")]
    NotReady { what: &'static str },
}

async fn ready<K: kube::Resource<DynamicType = ()> + Clone>(
    s: &Store<K>,
    what: &'static str,
) -> Result<(), ControllerError> {
    s.wait_until_ready()
        .await
        .map_err(|_| ControllerError::NotReady { what })
}

/// Runs the enabled controllers until `shutdown` resolves.
pub async fn run(
    client: kube::Client,
    opts: Options,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ControllerError> {
    let notify = Arc::new(Notify::new());
    let pods = spawn_reflector(
        Api::<Pod>::all(client.clone()),
        Config::default(),
        notify.clone(),
    );
    let rs = spawn_reflector(
        Api::<ReplicaSet>::all(client.clone()),
        Config::default(),
        notify.clone(),
    );
    let rc = spawn_reflector(
        Api::<ReplicationController>::all(client.clone()),
        Config::default(),
        notify.clone(),
    );
    let deployments = spawn_reflector(
        Api::<Deployment>::all(client.clone()),
        Config::default(),
        notify.clone(),
    );
    let daemonsets = spawn_reflector(
        Api::<DaemonSet>::all(client.clone()),
        Config::default(),
        notify.clone(),
    );
    let nodes = spawn_reflector(
        Api::<Node>::all(client.clone()),
        Config::default(),
        notify.clone(),
    );
    let leases = spawn_reflector(
        Api::<Lease>::namespaced(client.clone(), node_lifecycle::LEASE_NAMESPACE),
        Config::default(),
        notify.clone(),
    );
    let services = spawn_reflector(
        Api::<Service>::all(client.clone()),
        Config::default(),
        notify.clone(),
    );
    let eps = spawn_reflector(
        Api::<Endpoints>::all(client.clone()),
        Config::default(),
        notify.clone(),
    );
    let slices = spawn_reflector(
        Api::<EndpointSlice>::all(client.clone()),
        Config::default(),
        notify.clone(),
    );
    let namespaces = spawn_reflector(
        Api::<Namespace>::all(client.clone()),
        Config::default(),
        notify.clone(),
    );
    // Watched only when their controller runs: every ServiceAccount, and
    // of the ConfigMaps only the published ones (by name, as
    // kube-controller-manager's publisher watches them).
    let accounts = opts.service_accounts.then(|| {
        spawn_reflector(
            Api::<ServiceAccount>::all(client.clone()),
            Config::default(),
            notify.clone(),
        )
    });
    let root_ca = match (&opts.root_ca, opts.root_ca_publisher) {
        (Some(ca), true) => Some(ca.0.clone()),
        (None, true) => {
            tracing::warn!("no root CA given: kube-root-ca.crt is not published");
            None
        }
        _ => None,
    };
    let ca_maps = root_ca.is_some().then(|| {
        spawn_reflector(
            Api::<ConfigMap>::all(client.clone()),
            Config::default().fields(&format!("metadata.name={}", root_ca::NAME)),
            notify.clone(),
        )
    });
    ready(&pods, "pods").await?;
    ready(&rs, "replicasets").await?;
    ready(&rc, "replicationcontrollers").await?;
    ready(&deployments, "deployments").await?;
    ready(&daemonsets, "daemonsets").await?;
    ready(&nodes, "nodes").await?;
    ready(&leases, "leases").await?;
    ready(&services, "services").await?;
    ready(&eps, "endpoints").await?;
    ready(&slices, "endpointslices").await?;
    ready(&namespaces, "namespaces").await?;
    if let Some(a) = &accounts {
        ready(a, "serviceaccounts").await?;
    }
    if let Some(c) = &ca_maps {
        ready(c, "configmaps").await?;
    }
    tracing::info!(?opts, "controllers started");

    let mut rs_inflight = HashMap::new();
    let mut rc_inflight = HashMap::new();
    let mut ns_retried = HashMap::new();
    let mut ds_expect: HashMap<String, daemonset::Expectations> = HashMap::new();
    // Built afresh on every start: the first pass takes the nodes' CIDRs.
    let mut ipam = opts
        .allocate_node_cidrs
        .as_ref()
        .map(node_ipam::NodeIpam::new);
    let wake_pending = Arc::new(AtomicBool::new(false));
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => {
                tracing::info!("controllers stopping");
                return Ok(());
            }
            _ = notify.notified() => {}
            _ = tick.tick() => {}
        }
        let pass_started = Instant::now();
        let mut by_ns: HashMap<String, Vec<Arc<Pod>>> = HashMap::new();
        for p in pods.state() {
            by_ns
                .entry(p.metadata.namespace.clone().unwrap_or_default())
                .or_default()
                .push(p);
        }
        let mut failed = 0;
        if opts.replicas {
            failed += replicas::pass(&client, &rs, &by_ns, &mut rs_inflight).await;
            failed += replicas::pass(&client, &rc, &by_ns, &mut rc_inflight).await;
        }
        if opts.deployments {
            failed += deployments_pass(&client, &deployments, &rs).await;
        }
        if opts.daemonsets {
            let all = daemonsets.state();
            ds_expect.retain(|uid, _| all.iter().any(|d| d.metadata.uid.as_ref() == Some(uid)));
            let now = k8s_openapi::jiff::Timestamp::now();
            let mut next: Option<Duration> = None;
            for ds in all {
                if ds.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                let ns = ds.metadata.namespace.clone().unwrap_or_default();
                let uid = ds.metadata.uid.clone().unwrap_or_default();
                let expect = ds_expect.entry(uid).or_default();
                let empty = Vec::new();
                let view = expect.view(by_ns.get(&ns).unwrap_or(&empty));
                let p = daemonset::plan(&ds, &nodes.state(), &view, now, expect.satisfied());
                failed += daemonset::apply(&client, &ds, &p, expect).await;
                next = match (next, p.requeue_after) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            // A pod turns available minReadySeconds after it turned ready,
            // with no event to say so: come back then.
            if let Some(after) = next {
                let n = notify.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(after + Duration::from_millis(100)).await;
                    n.notify_one();
                });
            }
        }
        if let Some(ipam) = ipam.as_mut() {
            let todo = ipam.plan(&nodes.state());
            for node in node_ipam::apply(&client, &todo).await {
                ipam.failed(&node);
                failed += 1;
            }
        }
        if opts.node_lifecycle {
            let now = k8s_openapi::jiff::Timestamp::now();
            for n in nodes.state() {
                let name = n.metadata.name.clone().unwrap_or_default();
                let lease = leases.get(
                    &kube::runtime::reflector::ObjectRef::new(&name)
                        .within(node_lifecycle::LEASE_NAMESPACE),
                );
                let p =
                    node_lifecycle::plan_node(&n, lease.as_deref(), now, opts.node_monitor_grace);
                if p != node_lifecycle::NodePlan::default() {
                    failed += node_lifecycle::apply_node(&client, &n, &p, now).await;
                }
            }
            failed += node_lifecycle::evict(&client, &nodes.state(), &pods.state(), now).await;
        }
        if opts.garbage_collector {
            use gc::Node;
            let mut objects: Vec<Node> = Vec::new();
            objects.extend(
                pods.state()
                    .iter()
                    .map(|o| Node::new(&gc::POD, &o.metadata)),
            );
            objects.extend(
                rs.state()
                    .iter()
                    .map(|o| Node::new(&gc::REPLICA_SET, &o.metadata)),
            );
            objects.extend(
                rc.state()
                    .iter()
                    .map(|o| Node::new(&gc::REPLICATION_CONTROLLER, &o.metadata)),
            );
            objects.extend(
                deployments
                    .state()
                    .iter()
                    .map(|o| Node::new(&gc::DEPLOYMENT, &o.metadata)),
            );
            objects.extend(
                daemonsets
                    .state()
                    .iter()
                    .map(|o| Node::new(&gc::DAEMON_SET, &o.metadata)),
            );
            objects.extend(
                services
                    .state()
                    .iter()
                    .map(|o| Node::new(&gc::SERVICE, &o.metadata)),
            );
            objects.extend(
                slices
                    .state()
                    .iter()
                    .map(|o| Node::new(&gc::ENDPOINT_SLICE, &o.metadata)),
            );
            failed += gc::pass(&client, &objects).await;
            // The namespace lifecycle rides with the collector's switch.
            let terminating = namespace::pass(&client, &namespaces.state(), &mut ns_retried).await;
            // Content going away may not be visible to these watches
            // (a ConfigMap's finalizer): look again soon, without holding
            // up the other controllers as a failure would.
            if terminating > 0 && !wake_pending.swap(true, Ordering::SeqCst) {
                let (n, w) = (notify.clone(), wake_pending.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(namespace::RETRY).await;
                    w.store(false, Ordering::SeqCst);
                    n.notify_one();
                });
            }
        }
        if opts.endpoints {
            failed += endpoints_sync::pass(&client, &services, &eps, &slices, &by_ns).await;
        }
        if let Some(a) = &accounts {
            failed += service_account::pass(&client, &namespaces.state(), a).await;
        }
        if let (Some(c), Some(ca)) = (&ca_maps, &root_ca) {
            failed += root_ca::pass(&client, &namespaces.state(), c, ca).await;
        }
        if failed > 0 {
            // Retry soon without waiting for the next event.
            tokio::time::sleep(Duration::from_millis(500)).await;
            notify.notify_one();
        }
        pace(pass_started, MIN_PASS_GAP).await;
    }
}

async fn deployments_pass(
    client: &kube::Client,
    deployments: &Store<Deployment>,
    rs: &Store<ReplicaSet>,
) -> usize {
    let mut owned: HashMap<String, Vec<Arc<ReplicaSet>>> = HashMap::new();
    for r in rs.state() {
        if let Some(o) = r
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true) && o.kind == "Deployment")
        {
            owned.entry(o.uid.clone()).or_default().push(r.clone());
        }
    }
    let mut failed = 0;
    for d in deployments.state() {
        if d.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let mine = owned.remove(&uid).unwrap_or_default();
        let p = deployment::plan(&d, &mine);
        failed += deployment::apply(client, &d, &p).await;
    }
    failed
}
