//! What the scheduler knows about one node: its allocatable resources and
//! what the pods bound to it (or assumed to be, while their binding is in
//! flight) already use. Built from the reflector stores; no I/O here.

use std::collections::{BTreeMap, HashMap, HashSet};

use capstan_k8s::quantity::parse_resource;
use capstan_k8s::requests::{pod_request, RequestOptions};
use capstan_k8s::scheduling::host_ports;
use k8s_openapi::api::core::v1::{Node, Pod};

/// Resources the scheduler accounts for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i128,
    pub memory: i128,
}

/// A host port a pod claims (capstan-k8s's, shared with kubelet admission).
pub use capstan_k8s::scheduling::HostPort;

/// The pod's effective request of cpu and memory, as kube-scheduler counts
/// it (capstan-k8s's `pod_request`: app containers' sum or the largest init
/// container, limits standing in for requests, plus overhead).
pub fn pod_requests(pod: &Pod) -> Resources {
    Resources {
        milli_cpu: pod_request(pod, "cpu", RequestOptions::ADMISSION),
        memory: pod_request(pod, "memory", RequestOptions::ADMISSION),
    }
}

/// Every hostPort the pod's app containers claim.
pub fn pod_host_ports(pod: &Pod) -> Vec<HostPort> {
    host_ports::of_pod(pod)
}

/// The controller that owns a pod, for spreading its replicas.
pub fn controller_uid(pod: &Pod) -> Option<&str> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str())
}

#[derive(Clone, Debug, Default)]
pub struct NodeInfo {
    pub name: String,
    pub allocatable: Resources,
    pub allowed_pods: i128,
    pub requested: Resources,
    pub pod_count: i128,
    pub host_ports: HashSet<HostPort>,
    /// Pods per controller UID on this node.
    pub by_owner: HashMap<String, u32>,
}

impl NodeInfo {
    pub fn from_node(node: &Node) -> NodeInfo {
        let alloc = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
        let get = |name: &str| {
            alloc
                .and_then(|a| a.get(name))
                .and_then(|q| parse_resource(name, q))
        };
        NodeInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            allocatable: Resources {
                milli_cpu: get("cpu").unwrap_or(0),
                memory: get("memory").unwrap_or(0),
            },
            // Kubernetes' default when a node reports no pod capacity.
            allowed_pods: get("pods").unwrap_or(110),
            ..NodeInfo::default()
        }
    }

    pub fn add_pod(&mut self, pod: &Pod) {
        let r = pod_requests(pod);
        self.requested.milli_cpu += r.milli_cpu;
        self.requested.memory += r.memory;
        self.pod_count += 1;
        self.host_ports.extend(pod_host_ports(pod));
        if let Some(uid) = controller_uid(pod) {
            *self.by_owner.entry(uid.to_string()).or_default() += 1;
        }
    }
}

/// Node infos for every node, with every pod that holds resources on one
/// (bound and not finished) accounted to it.
pub fn snapshot<'a>(
    nodes: impl IntoIterator<Item = &'a Node>,
    bound: impl IntoIterator<Item = (&'a str, &'a Pod)>,
) -> BTreeMap<String, NodeInfo> {
    let mut infos: BTreeMap<String, NodeInfo> = nodes
        .into_iter()
        .map(|n| {
            let i = NodeInfo::from_node(n);
            (i.name.clone(), i)
        })
        .collect();
    for (node, pod) in bound {
        if let Some(info) = infos.get_mut(node) {
            info.add_pod(pod);
        }
    }
    infos
}

/// Whether a pod still holds its node's resources.
pub fn holds_resources(pod: &Pod) -> bool {
    !matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    pub fn container(cpu: &str, mem: &str) -> Container {
        let mut req = BTreeMap::new();
        if !cpu.is_empty() {
            req.insert("cpu".to_string(), Quantity(cpu.into()));
        }
        if !mem.is_empty() {
            req.insert("memory".to_string(), Quantity(mem.into()));
        }
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: Some(req),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub fn pod(containers: Vec<Container>, init: Vec<Container>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers,
                init_containers: Some(init),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn requests_sum_apps_and_max_with_init() {
        let p = pod(
            vec![container("100m", "64Mi"), container("200m", "")],
            vec![container("1", "16Mi")],
        );
        assert_eq!(
            pod_requests(&p),
            Resources {
                milli_cpu: 1000,
                memory: 64 * 1024 * 1024
            }
        );
    }

    #[test]
    fn limits_stand_in_for_requests() {
        let mut c = container("", "");
        if let Some(r) = c.resources.as_mut() {
            r.requests = None;
            r.limits = Some(BTreeMap::from([(
                "cpu".to_string(),
                Quantity("250m".into()),
            )]));
        }
        assert_eq!(pod_requests(&pod(vec![c], vec![])).milli_cpu, 250);
    }

    #[test]
    fn host_ports_normalise_the_wildcard() {
        let mut c = container("", "");
        c.ports = Some(vec![ContainerPort {
            container_port: 80,
            host_port: Some(8080),
            host_ip: Some("0.0.0.0".into()),
            ..Default::default()
        }]);
        assert_eq!(
            pod_host_ports(&pod(vec![c], vec![])),
            vec![HostPort::new(None, Some("TCP"), 8080)]
        );
    }
}
