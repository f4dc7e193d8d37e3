//! The node's presence in the API: registers the Node object (addresses,
//! capacity, node info, Ready condition) and keeps it alive with a Lease in
//! `kube-node-lease` plus periodic status heartbeats, as kubelet does.
//! Never touches pods.

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
pub fn status(info: &NodeInfo, cpus: usize, mem_kib: u64, now: &str) -> Value {
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
    json!({
        "addresses": addresses,
        "capacity": capacity,
        "allocatable": capacity,
        "conditions": [{
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "capstan kubelet is posting ready status",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
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

/// Registers the node, then heartbeats until the task is dropped.
pub async fn run(client: Client, info: NodeInfo) {
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client, LEASE_NAMESPACE);
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut registered = false;
    let mut failing = false;
    loop {
        let r = async {
            if !registered {
                register(&nodes, &info).await?;
                registered = true;
                tracing::info!(node = %info.name, "node registered");
            }
            let now = Timestamp::now().to_string();
            let body = json!({"status": status(&info, cpus, mem_kib(), &now)});
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
        tokio::time::sleep(if failing {
            Duration::from_secs(2)
        } else {
            HEARTBEAT
        })
        .await;
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
            },
            2,
            1024,
            "2026-01-01T00:00:00Z",
        );
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
}
