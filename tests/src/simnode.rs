//! Simulated nodes for control-plane tests that need no containers: each
//! registers a Ready Node with allocatable resources, renews its Lease like
//! a kubelet, "runs" the pods bound to it (status Running, a made-up pod IP,
//! Ready unless the pod carries `capstan.test/ready: "false"`), and finishes
//! graceful deletions. Stopping a node stops its heartbeat, as when an
//! agent dies. Runs on a tokio runtime whose threads live in the netns
//! that reaches the API server.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeStatus, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};

/// Label that keeps a simulated pod not ready.
pub const NOT_READY_LABEL: &str = "capstan.test/ready";

#[derive(Clone)]
pub struct SimNodes {
    client: kube::Client,
    alive: Arc<Mutex<HashSet<String>>>,
}

fn now() -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::now()
}

fn status(ready: bool) -> NodeStatus {
    let q = |s: &str| Quantity(s.into());
    let res = BTreeMap::from([
        ("cpu".to_string(), q("4")),
        ("memory".to_string(), q("8Gi")),
        ("pods".to_string(), q("110")),
    ]);
    NodeStatus {
        capacity: Some(res.clone()),
        allocatable: Some(res),
        conditions: Some(vec![NodeCondition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            reason: Some("KubeletReady".into()),
            last_heartbeat_time: Some(Time(now())),
            last_transition_time: Some(Time(now())),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

impl SimNodes {
    /// Starts the pod "runner" (call from inside the runtime).
    pub fn start(client: kube::Client) -> SimNodes {
        let sim = SimNodes {
            client,
            alive: Arc::new(Mutex::new(HashSet::new())),
        };
        let s = sim.clone();
        tokio::spawn(async move { s.run_pods().await });
        let s = sim.clone();
        tokio::spawn(async move { s.heartbeat().await });
        sim
    }

    /// Registers (or revives) `name` and starts its heartbeat.
    pub async fn add(&self, name: &str, labels: &[(&str, &str)]) -> Result<(), kube::Error> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let node = Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .chain([("kubernetes.io/hostname".to_string(), name.to_string())])
                        .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        };
        match nodes.create(&PostParams::default(), &node).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e),
        }
        let patch = serde_json::json!({"status": status(true)});
        nodes
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        self.renew(name).await?;
        if let Ok(mut a) = self.alive.lock() {
            a.insert(name.to_string());
        }
        Ok(())
    }

    /// Stops the node's heartbeat (its "agent" died).
    pub fn stop(&self, name: &str) {
        if let Ok(mut a) = self.alive.lock() {
            a.remove(name);
        }
    }

    /// Stops the heartbeat and deletes the Node object.
    pub async fn remove(&self, name: &str) -> Result<(), kube::Error> {
        self.stop(name);
        let nodes: Api<Node> = Api::all(self.client.clone());
        nodes
            .delete(name, &DeleteParams::default())
            .await
            .map(|_| ())
    }

    async fn renew(&self, name: &str) -> Result<(), kube::Error> {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), "kube-node-lease");
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("kube-node-lease".into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(name.into()),
                lease_duration_seconds: Some(40),
                renew_time: Some(MicroTime(now())),
                ..Default::default()
            }),
        };
        let patch =
            serde_json::json!({"spec": {"renewTime": MicroTime(now()), "holderIdentity": name}});
        match leases
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => leases
                .create(&PostParams::default(), &lease)
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        }
    }

    async fn heartbeat(&self) {
        let nodes: Api<Node> = Api::all(self.client.clone());
        loop {
            let alive: Vec<String> = self
                .alive
                .lock()
                .map(|a| a.iter().cloned().collect())
                .unwrap_or_default();
            for n in alive {
                let _ = self.renew(&n).await;
                let patch = serde_json::json!({"status": status(true)});
                let _ = nodes
                    .patch_status(&n, &PatchParams::default(), &Patch::Merge(&patch))
                    .await;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    async fn run_pods(&self) {
        let pods: Api<Pod> = Api::all(self.client.clone());
        let mut ips: HashMap<String, String> = HashMap::new();
        let mut next: u32 = 2;
        let stream = watcher(pods.clone(), watcher::Config::default())
            .default_backoff()
            .applied_objects();
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            let Ok(p) = ev else { continue };
            let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.clone()) else {
                continue;
            };
            let alive = self
                .alive
                .lock()
                .map(|a| a.contains(&node))
                .unwrap_or(false);
            if !alive {
                continue;
            }
            let ns = p.metadata.namespace.clone().unwrap_or_default();
            let name = p.metadata.name.clone().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
            if p.metadata.deletion_timestamp.is_some() {
                let dp = DeleteParams::default().grace_period(0);
                persist(|| api.delete(&name, &dp)).await;
                continue;
            }
            let want_ready = p
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(NOT_READY_LABEL))
                .map(String::as_str)
                != Some("false");
            let uid = p.metadata.uid.clone().unwrap_or_default();
            let ip = ips
                .entry(uid)
                .or_insert_with(|| {
                    next += 1;
                    format!("10.250.{}.{}", next / 250, next % 250 + 1)
                })
                .clone();
            let st = p.status.clone().unwrap_or_default();
            let is_ready = st
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            if st.phase.as_deref() == Some("Running") && is_ready == want_ready {
                continue;
            }
            let r = if want_ready { "True" } else { "False" };
            let patch = serde_json::json!({"status": {
                "phase": "Running",
                "podIP": ip,
                "podIPs": [{"ip": ip}],
                "hostIP": "192.168.250.100",
                "startTime": Time(now()),
                "conditions": [
                    {"type": "PodScheduled", "status": "True"},
                    {"type": "Initialized", "status": "True"},
                    {"type": "ContainersReady", "status": r},
                    {"type": "Ready", "status": r, "lastTransitionTime": Time(now())},
                ],
            }});
            let pp = PatchParams::default();
            let body = Patch::Merge(&patch);
            persist(|| api.patch_status(&name, &pp, &body)).await;
        }
    }
}

/// Runs a kubelet-side write until the server takes it or says the pod is
/// gone: no further event may come for this pod, so a write lost to a
/// server restart would otherwise never be made (a real kubelet retries
/// too). Gives up after `PERSIST_ATTEMPTS` (the server stays down).
async fn persist<T, F, Fut>(mut write: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    for _ in 0..PERSIST_ATTEMPTS {
        match write().await {
            Ok(_) => return,
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => return,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// 30 s of retries at 100 ms: longer than any restart a test makes.
const PERSIST_ATTEMPTS: usize = 300;
