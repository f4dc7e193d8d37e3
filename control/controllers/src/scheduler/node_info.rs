//! What the scheduler knows about one node: its allocatable resources and
//! what the pods bound to it (or assumed to be, while their binding is in
//! flight) already use. Built from the reflector stores; no I/O here.

use std::collections::{BTreeMap, HashMap, HashSet};

use k8s_openapi::api::core::v1::{Container, Node, Pod};

use super::quantity::parse_resource;

/// Resources the scheduler accounts for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i128,
    pub memory: i128,
}

impl Resources {
    fn add(&mut self, o: Resources) {
        self.milli_cpu += o.milli_cpu;
        self.memory += o.memory;
    }
    fn max(self, o: Resources) -> Resources {
        Resources {
            milli_cpu: self.milli_cpu.max(o.milli_cpu),
            memory: self.memory.max(o.memory),
        }
    }
}

/// A host port a pod claims: (protocol, host IP, port). An empty or 0.0.0.0
/// host IP conflicts with every address.
pub type HostPort = (String, String, i32);

fn container_requests(c: &Container) -> Resources {
    let Some(res) = c.resources.as_ref() else {
        return Resources::default();
    };
    // Limits stand in for missing requests, as the API server's defaulting does.
    let get = |name: &str| {
        res.requests
            .as_ref()
            .and_then(|r| r.get(name))
            .or_else(|| res.limits.as_ref().and_then(|l| l.get(name)))
            .and_then(|q| parse_resource(name, q))
            .unwrap_or(0)
    };
    Resources {
        milli_cpu: get("cpu"),
        memory: get("memory"),
    }
}

/// The pod's effective request: the larger of the sum of its app containers
/// and its largest init container (they run one at a time), plus overhead.
pub fn pod_requests(pod: &Pod) -> Resources {
    let Some(spec) = pod.spec.as_ref() else {
        return Resources::default();
    };
    let mut sum = Resources::default();
    for c in &spec.containers {
        sum.add(container_requests(c));
    }
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(container_requests)
        .fold(Resources::default(), Resources::max);
    let mut total = sum.max(init);
    if let Some(o) = spec.overhead.as_ref() {
        total.add(Resources {
            milli_cpu: o
                .get("cpu")
                .and_then(|q| parse_resource("cpu", q))
                .unwrap_or(0),
            memory: o
                .get("memory")
                .and_then(|q| parse_resource("memory", q))
                .unwrap_or(0),
        });
    }
    total
}

pub fn pod_host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    spec.containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let hp = p.host_port.filter(|h| *h > 0)?;
            let ip = p.host_ip.clone().unwrap_or_default();
            let ip = if ip == "0.0.0.0" { String::new() } else { ip };
            Some((p.protocol.clone().unwrap_or_else(|| "TCP".into()), ip, hp))
        })
        .collect()
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
        self.requested.add(pod_requests(pod));
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
    use k8s_openapi::api::core::v1::{ContainerPort, PodSpec, ResourceRequirements};
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
            vec![("TCP".to_string(), String::new(), 8080)]
        );
    }
}
