//! The node's presence in the API: registers the Node object (addresses,
//! capacity, node info, the agent API's port, Ready and NetworkUnavailable
//! conditions, podCIDR from the overlay's subnet) and keeps it alive with a
//! Lease in `kube-node-lease` plus periodic status heartbeats, as kubelet
//! does. Never touches pods.

use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{json, Value};

pub const LEASE_NAMESPACE: &str = "kube-node-lease";
pub const LEASE_SECONDS: i32 = 40;
pub const HEARTBEAT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub name: String,
    pub ip: Option<IpAddr>,
    pub runtime_version: String,
    /// The agent API's port, published as `daemonEndpoints.kubeletEndpoint`.
    pub kubelet_port: u16,
    /// The overlay's subnet file, when the overlay runs beside the kubelet.
    pub subnet_file: Option<std::path::PathBuf>,
}

/// The overlay as the Node reports it: up (with its subnet) or not yet,
/// and since when (the condition's lastTransitionTime).
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    pub subnet: Option<ipnetwork::Ipv4Network>,
    pub since: String,
}

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

fn mem_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// The Node's status as this kubelet reports it (pure but for the clock
/// and the machine facts passed in).
pub fn status(
    info: &NodeInfo,
    cpus: usize,
    mem_kib: u64,
    now: &str,
    network: Option<&Network>,
) -> Value {
    let mut addresses = vec![json!({"type": "Hostname", "address": info.name})];
    if let Some(ip) = info.ip {
        addresses.insert(0, json!({"type": "InternalIP", "address": ip.to_string()}));
    }
    let capacity =
        json!({"cpu": cpus.to_string(), "memory": format!("{mem_kib}Ki"), "pods": "110"});
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let mut conditions = vec![json!({
        "type": "Ready",
        "status": "True",
        "reason": "KubeletReady",
        "message": "capstan kubelet is posting ready status",
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
    })];
    if let Some(n) = network {
        let (status, reason, message) = match n.subnet {
            Some(s) => (
                "False",
                "CapstanOverlayIsUp",
                format!("capstan overlay is up with subnet {s}"),
            ),
            None => (
                "True",
                "CapstanOverlayNotUp",
                "capstan overlay has no subnet lease yet".to_string(),
            ),
        };
        conditions.push(json!({
            "type": "NetworkUnavailable",
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now,
            "lastTransitionTime": n.since,
        }));
    }
    json!({
        "addresses": addresses,
        "capacity": capacity,
        "allocatable": capacity,
        "conditions": conditions,
        "daemonEndpoints": {"kubeletEndpoint": {"Port": info.kubelet_port}},
        "nodeInfo": {
            "architecture": match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", a => a },
            "operatingSystem": "linux",
            "kernelVersion": kernel,
            "osImage": "Linux",
            "containerRuntimeVersion": info.runtime_version,
            "kubeletVersion": "v1.33.0-capstan",
            "kubeProxyVersion": "",
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
        },
    })
}

async fn register(api: &Api<Node>, info: &NodeInfo) -> Result<(), kube::Error> {
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": info.name,
            "labels": {
                "kubernetes.io/hostname": info.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": match std::env::consts::ARCH { "x86_64" => "amd64", a => a },
            },
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

/// Registers the node, then heartbeats until the task is dropped. With an
/// overlay subnet file, the file is polled between heartbeats so the
/// podCIDR and NetworkUnavailable follow the overlay within a second.
pub async fn run(client: Client, info: NodeInfo) {
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client, LEASE_NAMESPACE);
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut registered = false;
    let mut failing = false;
    let mut cidr_done = false;
    let read_subnet = |info: &NodeInfo| {
        info.subnet_file
            .as_deref()
            .and_then(crate::overlay::subnet_file::previous_subnet)
    };
    let mut network = info.subnet_file.as_ref().map(|_| Network {
        subnet: read_subnet(&info),
        since: Timestamp::now().to_string(),
    });
    let mut next_beat = tokio::time::Instant::now();
    loop {
        if let Some(n) = network.as_mut() {
            let subnet = read_subnet(&info);
            if subnet != n.subnet {
                tracing::info!(node = %info.name, subnet = ?subnet, "overlay subnet changed");
                *n = Network {
                    subnet,
                    since: Timestamp::now().to_string(),
                };
                next_beat = tokio::time::Instant::now();
            }
        }
        if tokio::time::Instant::now() >= next_beat {
            let r = async {
                if !registered {
                    register(&nodes, &info).await?;
                    registered = true;
                    tracing::info!(node = %info.name, "node registered");
                }
                if let (false, Some(subnet)) =
                    (cidr_done, network.as_ref().and_then(|n| n.subnet))
                {
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
                let body =
                    json!({"status": status(&info, cpus, mem_kib(), &now, network.as_ref())});
                nodes
                    .patch_status(&info.name, &PatchParams::default(), &Patch::Merge(&body))
                    .await?;
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
        tokio::time::sleep_until(wake).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_has_address_capacity_and_ready() {
        let s = status(
            &NodeInfo {
                name: "n1".into(),
                ip: Some("192.168.0.5".parse().unwrap()),
                runtime_version: "containerd://1.6.20".into(),
                kubelet_port: 10250,
                subnet_file: None,
            },
            2,
            1024,
            "2026-01-01T00:00:00Z",
            Some(&Network {
                subnet: Some("10.244.3.0/24".parse().unwrap()),
                since: "2026-01-01T00:00:00Z".into(),
            }),
        );
        assert_eq!(s["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        assert_eq!(s["conditions"][1]["type"], "NetworkUnavailable");
        assert_eq!(s["conditions"][1]["status"], "False");
        assert_eq!(s["addresses"][0]["type"], "InternalIP");
        assert_eq!(s["addresses"][0]["address"], "192.168.0.5");
        assert_eq!(s["capacity"]["cpu"], "2");
        assert_eq!(s["capacity"]["memory"], "1024Ki");
        assert_eq!(s["conditions"][0]["type"], "Ready");
        assert_eq!(s["conditions"][0]["status"], "True");
        let parsed: k8s_openapi::api::core::v1::NodeStatus = serde_json::from_value(s).unwrap();
        assert_eq!(
            parsed.node_info.unwrap().container_runtime_version,
            "containerd://1.6.20"
        );
    }

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
