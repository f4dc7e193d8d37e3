//! Registering the Node and keeping it alive: the Lease heartbeat, status
//! updates, the podCIDR from the overlay's subnet file, pressure taints.
//! Never touches pods.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::node::conditions::{Pressure, Tracker};
use crate::node::info::NodeInfo;
use crate::node::subnet_file::own_subnet;
use crate::node::{status, taints};

pub const LEASE_NAMESPACE: &str = "kube-node-lease";
pub const LEASE_SECONDS: i32 = 40;
pub const HEARTBEAT: Duration = Duration::from_secs(10);

/// The podCIDR patch for a Node whose spec has none yet (podCIDR is
/// immutable once set, so an existing one always wins).
pub fn pod_cidr_patch(node: &Node, subnet: ipnetwork::Ipv4Network) -> Option<Value> {
    let spec = node.spec.as_ref();
    let has = spec
        .and_then(|s| s.pod_cidr.as_deref())
        .is_some_and(|c| !c.is_empty())
        || spec
            .and_then(|s| s.pod_cidrs.as_ref())
            .is_some_and(|c| !c.is_empty());
    (!has)
        .then(|| json!({"spec": {"podCIDR": subnet.to_string(), "podCIDRs": [subnet.to_string()]}}))
}

/// The labels kubelet registers its Node with.
pub fn default_labels(name: &str) -> BTreeMap<String, String> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), name.to_string()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), arch.to_string()),
    ])
}

async fn register(api: &Api<Node>, info: &NodeInfo) -> Result<(), kube::Error> {
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": info.name,
            "labels": default_labels(&info.name),
        },
    }))
    .map_err(kube::Error::SerdeError)?;
    match api.create(&PostParams::default(), &node).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

async fn renew_lease(api: &Api<Lease>, name: &str) -> Result<(), kube::Error> {
    let now = MicroTime(Timestamp::now());
    let lease: Lease = serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": now},
    }))
    .map_err(kube::Error::SerdeError)?;
    match api.create(&PostParams::default(), &lease).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let body = json!({"spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": now}});
            api.patch(name, &PatchParams::default(), &Patch::Merge(&body))
                .await
                .map(|_| ())
        }
        Err(e) => Err(e),
    }
}

/// What the rest of the agent tells the Node: resource pressure (the
/// eviction manager) and the container runtime's last error (None: up).
pub struct Signals {
    pub pressure: watch::Receiver<Pressure>,
    pub runtime: watch::Receiver<Option<String>>,
}

/// Puts the pressure taints on the node (or takes them off); the node's
/// resourceVersion in the patch makes a concurrent taint change a conflict
/// to retry, not a lost update.
async fn sync_taints(api: &Api<Node>, name: &str, p: Pressure) -> Result<(), kube::Error> {
    let node = api.get(name).await?;
    let current = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    if let Some(t) = taints::plan(&current, p, Timestamp::now()) {
        let body = json!({
            "metadata": {"resourceVersion": node.metadata.resource_version},
            "spec": {"taints": t},
        });
        api.patch(name, &PatchParams::default(), &Patch::Merge(&body))
            .await?;
        tracing::info!(node = %name, memory = p.memory, disk = p.disk, pid = p.pid, "pressure taints updated");
    }
    Ok(())
}

/// Registers the node, then heartbeats until the task is dropped. With an
/// overlay subnet file, the file is polled between heartbeats so the
/// podCIDR and NetworkUnavailable follow the overlay within a second; a
/// pressure change is written at once.
pub async fn run(client: Client, info: NodeInfo, signals: Signals) {
    let Signals {
        mut pressure,
        mut runtime,
    } = signals;
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client, LEASE_NAMESPACE);
    let mut registered = false;
    let mut failing = false;
    let mut cidr_done = false;
    let mut taints_done = false;
    let mut pressure_open = true;
    let mut runtime_open = true;
    let mut tracker = Tracker::default();
    let read_subnet = |info: &NodeInfo| info.subnet_file.as_deref().and_then(own_subnet);
    let mut network = info.subnet_file.as_ref().map(|_| read_subnet(&info));
    let mut next_beat = tokio::time::Instant::now();
    loop {
        if let Some(n) = network.as_mut() {
            let subnet = read_subnet(&info);
            if subnet != *n {
                tracing::info!(node = %info.name, subnet = ?subnet, "overlay subnet changed");
                *n = subnet;
                next_beat = tokio::time::Instant::now();
            }
        }
        if tokio::time::Instant::now() >= next_beat {
            let p = *pressure.borrow_and_update();
            let runtime_error = runtime.borrow_and_update().clone();
            let r = async {
                if !registered {
                    register(&nodes, &info).await?;
                    registered = true;
                    tracing::info!(node = %info.name, "node registered");
                }
                if let (false, Some(Some(subnet))) = (cidr_done, network) {
                    let node = nodes.get(&info.name).await?;
                    if let Some(patch) = pod_cidr_patch(&node, subnet) {
                        nodes
                            .patch(&info.name, &PatchParams::default(), &Patch::Merge(&patch))
                            .await?;
                        tracing::info!(node = %info.name, pod_cidr = %subnet, "podCIDR set from the overlay lease");
                    }
                    cidr_done = true;
                }
                let now = Timestamp::now().to_string();
                let conditions = tracker.conditions(p, network, runtime_error.as_deref(), &now);
                let body = json!({"status": status::status(&info, conditions)});
                nodes
                    .patch_status(&info.name, &PatchParams::default(), &Patch::Merge(&body))
                    .await?;
                if !taints_done {
                    sync_taints(&nodes, &info.name, p).await?;
                    taints_done = true;
                }
                renew_lease(&leases, &info.name).await
            }
            .await;
            match r {
                Ok(()) => failing = false,
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(node = %info.name, error = %e, "node heartbeat failed; retrying");
                }
                Err(_) => {}
            }
            next_beat = tokio::time::Instant::now()
                + if failing {
                    Duration::from_secs(2)
                } else {
                    HEARTBEAT
                };
        }
        // The subnet file is cheap to read; the API is only written on
        // heartbeats and on a change.
        let wake = if network.is_some() {
            next_beat.min(tokio::time::Instant::now() + Duration::from_millis(500))
        } else {
            next_beat
        };
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            r = pressure.changed(), if pressure_open => match r {
                Ok(()) => {
                    let p = *pressure.borrow();
                    tracing::info!(node = %info.name, memory = p.memory, disk = p.disk, pid = p.pid, "node pressure changed");
                    taints_done = false;
                    next_beat = tokio::time::Instant::now();
                }
                Err(_) => pressure_open = false,
            },
            r = runtime.changed(), if runtime_open => match r {
                Ok(()) => next_beat = tokio::time::Instant::now(),
                Err(_) => runtime_open = false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_cidr_only_when_empty() {
        let subnet = "10.244.3.0/24".parse().unwrap();
        let empty: Node = serde_json::from_value(json!({"metadata": {"name": "n"}})).unwrap();
        let p = pod_cidr_patch(&empty, subnet).unwrap();
        assert_eq!(p["spec"]["podCIDR"], "10.244.3.0/24");
        assert_eq!(p["spec"]["podCIDRs"][0], "10.244.3.0/24");
        let set: Node = serde_json::from_value(
            json!({"metadata": {"name": "n"}, "spec": {"podCIDR": "10.244.7.0/24"}}),
        )
        .unwrap();
        assert!(pod_cidr_patch(&set, subnet).is_none());
    }
}
