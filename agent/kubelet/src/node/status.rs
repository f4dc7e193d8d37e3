//! The Node's status document as this kubelet reports it: addresses,
//! capacity and allocatable, the conditions it is handed, the agent API's
//! port and node info. Pure but for reading the kernel release.

use serde_json::{json, Value};

use crate::node::info::NodeInfo;
use crate::node::resources;

pub fn status(info: &NodeInfo, conditions: Vec<Value>) -> Value {
    let mut addresses = vec![json!({"type": "Hostname", "address": info.name})];
    if let Some(ip) = info.ip {
        addresses.insert(0, json!({"type": "InternalIP", "address": ip.to_string()}));
    }
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    json!({
        "addresses": addresses,
        "capacity": resources::to_json(&info.resources.capacity),
        "allocatable": resources::to_json(&info.resources.allocatable),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::conditions::{Pressure, Tracker};
    use crate::node::resources::{NodeResources, Resources};

    #[test]
    fn status_has_address_resources_and_conditions() {
        let info = NodeInfo {
            name: "n1".into(),
            ip: Some("192.168.0.5".parse().unwrap()),
            runtime_version: "containerd://1.6.20".into(),
            kubelet_port: 10250,
            subnet_file: None,
            resources: NodeResources {
                capacity: Resources {
                    cpu_millis: Some(2000),
                    memory: Some(1 << 30),
                    ephemeral_storage: None,
                    pid: None,
                },
                allocatable: Resources {
                    cpu_millis: Some(1900),
                    memory: Some(768 << 20),
                    ephemeral_storage: None,
                    pid: None,
                },
            },
        };
        let conditions = Tracker::default().conditions(
            Pressure::default(),
            Some(Some("10.244.3.0/24".parse().unwrap())),
            None,
            "2026-01-01T00:00:00Z",
        );
        let s = status(&info, conditions);
        assert_eq!(s["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        assert_eq!(s["addresses"][0]["type"], "InternalIP");
        assert_eq!(s["addresses"][0]["address"], "192.168.0.5");
        assert_eq!(s["capacity"]["cpu"], "2");
        assert_eq!(s["capacity"]["memory"], "1Gi");
        assert_eq!(s["allocatable"]["cpu"], "1900m");
        assert_eq!(s["allocatable"]["memory"], "768Mi");
        assert_eq!(s["allocatable"]["pods"], "110");
        let parsed: k8s_openapi::api::core::v1::NodeStatus = serde_json::from_value(s).unwrap();
        assert_eq!(
            parsed.node_info.unwrap().container_runtime_version,
            "containerd://1.6.20"
        );
        let kinds: Vec<String> = parsed
            .conditions
            .unwrap()
            .into_iter()
            .map(|c| format!("{}={}", c.type_, c.status))
            .collect();
        assert_eq!(
            kinds,
            [
                "MemoryPressure=False",
                "DiskPressure=False",
                "PIDPressure=False",
                "Ready=True",
                "NetworkUnavailable=False"
            ]
        );
    }
}
