//! The scheduler: binds every unscheduled pod to a node through the
//! `binding` subresource, like kube-scheduler's default profile. It is a
//! plain API client (kube-rs reflectors for nodes and pods) and never
//! touches etcd. Decisions are made on a snapshot that counts pods whose
//! binding is still in flight ("assumed"), so many binds can be in the air
//! at once without over-committing a node.

pub mod algorithm;
pub mod filter;
mod name;
pub mod node_info;
mod report;

pub use name::DEFAULT_SCHEDULER_NAME;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use tokio::sync::{mpsc, Notify, Semaphore};

use capstan_k8s::{pace, spawn_reflector};
use kube::runtime::watcher::Config;
use node_info::{holds_resources, NodeInfo};

#[derive(Clone, Debug)]
pub struct Options {
    pub scheduler_name: String,
    /// Bindings in flight at once.
    pub max_inflight_binds: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            scheduler_name: DEFAULT_SCHEDULER_NAME.into(),
            max_inflight_binds: 64,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("initial list of {what} failed: the watch ended before it was complete")]
    NotReady { what: &'static str },
}

/// Outcome of one binding call, reported back to the loop.
struct BindResult {
    uid: String,
    ok: bool,
}

fn key(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

fn is_pending(pod: &Pod, scheduler_name: &str) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    spec.node_name.as_deref().unwrap_or("").is_empty()
        && pod.metadata.deletion_timestamp.is_none()
        && spec
            .scheduler_name
            .as_deref()
            .unwrap_or(DEFAULT_SCHEDULER_NAME)
            == scheduler_name
        && holds_resources(pod)
}

/// Runs the scheduler until `shutdown` resolves.
pub async fn run(
    client: kube::Client,
    opts: Options,
    shutdown: impl Future<Output = ()>,
) -> Result<(), SchedulerError> {
    let notify = Arc::new(Notify::new());
    let nodes = spawn_reflector(
        Api::<Node>::all(client.clone()),
        Config::default(),
        notify.clone(),
    );
    let pods = spawn_reflector(
        Api::<Pod>::all(client.clone()),
        Config::default(),
        notify.clone(),
    );
    nodes
        .wait_until_ready()
        .await
        .map_err(|_| SchedulerError::NotReady { what: "nodes" })?;
    pods.wait_until_ready()
        .await
        .map_err(|_| SchedulerError::NotReady { what: "pods" })?;
    tracing::info!(scheduler = %opts.scheduler_name, "scheduler started");

    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<BindResult>();
    let inflight = Arc::new(Semaphore::new(opts.max_inflight_binds.max(1)));
    let reporter = report::Reporter::new(client.clone());
    // Pods bound by us whose binding the pod watch hasn't shown yet.
    let mut assumed: HashMap<String, (String, Arc<Pod>)> = HashMap::new();
    // Pods that fit nowhere, with the message last reported for them.
    let mut unschedulable: HashMap<String, String> = HashMap::new();
    tokio::pin!(shutdown);
    // A periodic pass catches anything a lost notification would miss.
    let mut tick = tokio::time::interval(Duration::from_secs(5));

    loop {
        tokio::select! {
            _ = &mut shutdown => {
                tracing::info!("scheduler stopping");
                return Ok(());
            }
            _ = notify.notified() => {}
            Some(r) = done_rx.recv() => {
                if !r.ok {
                    assumed.remove(&r.uid);
                }
                while let Ok(r) = done_rx.try_recv() {
                    if !r.ok {
                        assumed.remove(&r.uid);
                    }
                }
            }
            _ = tick.tick() => {}
        }
        let pass_started = Instant::now();
        let all_pods = pods.state();
        let node_map: BTreeMap<String, Arc<Node>> = nodes
            .state()
            .into_iter()
            .map(|n| (n.metadata.name.clone().unwrap_or_default(), n))
            .collect();

        // Forget assumptions the watch has caught up with (or that vanished).
        let by_uid: HashMap<String, &Arc<Pod>> = all_pods.iter().map(|p| (key(p), p)).collect();
        assumed.retain(|uid, _| {
            by_uid.get(uid).is_some_and(|p| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .unwrap_or("")
                    .is_empty()
            })
        });
        unschedulable.retain(|uid, _| by_uid.contains_key(uid));

        let bound = all_pods.iter().filter_map(|p| {
            let node = p.spec.as_ref()?.node_name.as_deref()?;
            (!node.is_empty() && holds_resources(p)).then_some((node, &**p))
        });
        let in_flight = assumed.values().map(|(n, p)| (n.as_str(), &**p));
        let mut infos: BTreeMap<String, NodeInfo> =
            node_info::snapshot(node_map.values().map(|n| &**n), bound.chain(in_flight));

        let mut pending: Vec<&Arc<Pod>> = all_pods
            .iter()
            .filter(|p| is_pending(p, &opts.scheduler_name) && !assumed.contains_key(&key(p)))
            .collect();
        // Higher priority first, then oldest first, as kube-scheduler's queue.
        pending.sort_by_key(|p| {
            (
                std::cmp::Reverse(p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)),
                p.metadata.creation_timestamp.clone().map(|t| t.0),
                p.metadata.name.clone(),
            )
        });
        for pod in pending {
            let uid = key(pod);
            match algorithm::schedule(pod, &node_map, &infos, rand::random::<u32>() as usize) {
                Ok(node) => {
                    if let Some(info) = infos.get_mut(&node) {
                        info.add_pod(pod);
                    }
                    unschedulable.remove(&uid);
                    assumed.insert(uid.clone(), (node.clone(), pod.clone()));
                    spawn_bind(
                        client.clone(),
                        pod.clone(),
                        node,
                        inflight.clone(),
                        done_tx.clone(),
                    );
                }
                Err(fit) => {
                    if unschedulable.get(&uid) != Some(&fit.message) {
                        tracing::info!(pod = %pod.metadata.name.as_deref().unwrap_or(""), namespace = %pod.metadata.namespace.as_deref().unwrap_or(""), reason = %fit.message, "pod unschedulable");
                        reporter.unschedulable(pod.clone(), fit.message.clone());
                        unschedulable.insert(uid, fit.message);
                    }
                }
            }
        }
        pace(pass_started, Duration::ZERO).await;
    }
}

fn spawn_bind(
    client: kube::Client,
    pod: Arc<Pod>,
    node: String,
    inflight: Arc<Semaphore>,
    done: mpsc::UnboundedSender<BindResult>,
) {
    tokio::spawn(async move {
        let _permit = inflight.acquire_owned().await;
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let binding = Binding {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                uid: pod.metadata.uid.clone(),
                ..Default::default()
            },
            target: ObjectReference {
                kind: Some("Node".into()),
                api_version: Some("v1".into()),
                name: Some(node.clone()),
                ..Default::default()
            },
        };
        let api: Api<Pod> = Api::namespaced(client, &ns);
        let result = api
            .create_subresource::<_, serde_json::Value>(
                "binding",
                &name,
                &PostParams::default(),
                &binding,
            )
            .await;
        let ok = match result {
            Ok(_) => {
                tracing::debug!(pod = %name, namespace = %ns, node = %node, "bound");
                true
            }
            Err(e) => {
                // 409: bound meanwhile (another scheduler, or a retried bind).
                tracing::info!(pod = %name, namespace = %ns, node = %node, error = %e, "binding failed");
                false
            }
        };
        let _ = done.send(BindResult {
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            ok,
        });
    });
}
