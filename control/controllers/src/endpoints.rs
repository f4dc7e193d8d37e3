//! Endpoints and EndpointSlices for every Service with a selector: the
//! IPs of the pods it selects, ready ones apart from not-ready ones, with
//! named target ports resolved per pod. Pure builders here; `sync.rs`
//! writes only what differs from what is stored.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
    ServicePort,
};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::pods::{is_ready, is_terminating, node_name, phase};

pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// The most endpoints one slice holds, as Kubernetes' default.
pub const MAX_PER_SLICE: usize = 100;

/// A service port resolved on one pod: (name, port, protocol).
type ResolvedPort = (String, i32, String);

/// The pods a service's selector picks (services without a selector are
/// managed by their users, not by this controller).
pub fn selected<'a>(svc: &Service, pods: &'a [Arc<Pod>]) -> Option<Vec<&'a Arc<Pod>>> {
    let sel = svc.spec.as_ref()?.selector.as_ref()?;
    if sel.is_empty() {
        return None;
    }
    Some(
        pods.iter()
            .filter(|p| {
                let labels = p.metadata.labels.as_ref();
                sel.iter()
                    .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
            })
            .filter(|p| pod_ip(p).is_some() && !matches!(phase(p), "Succeeded" | "Failed"))
            .collect(),
    )
}

fn pod_ip(p: &Pod) -> Option<&str> {
    p.status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .filter(|ip| !ip.is_empty())
}

/// The port a service port reaches on this pod: a number, or a container
/// port found by name (None when the pod has no port of that name).
pub fn target_port(sp: &ServicePort, pod: &Pod) -> Option<i32> {
    match sp.target_port.as_ref() {
        None => Some(sp.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            if let Ok(n) = name.parse::<i32>() {
                return Some(n);
            }
            let proto = sp.protocol.as_deref().unwrap_or("TCP");
            pod.spec
                .as_ref()?
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == proto
                })
                .map(|p| p.container_port)
        }
    }
}

/// The service's ports as this pod serves them (ports it can't resolve by
/// name are left out).
fn resolved_ports(svc: &Service, pod: &Pod) -> Vec<ResolvedPort> {
    service_ports(svc)
        .iter()
        .filter_map(|sp| {
            let port = target_port(sp, pod)?;
            Some((
                sp.name.clone().unwrap_or_default(),
                port,
                sp.protocol.clone().unwrap_or_else(|| "TCP".into()),
            ))
        })
        .collect()
}

fn target_ref(p: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: p.metadata.namespace.clone(),
        name: p.metadata.name.clone(),
        uid: p.metadata.uid.clone(),
        ..Default::default()
    }
}

fn service_ports(svc: &Service) -> &[ServicePort] {
    svc.spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default()
}

/// The Endpoints object for `svc`: pods grouped into subsets by the ports
/// they resolve to. Terminating pods are left out, as in Kubernetes.
pub fn build_endpoints(svc: &Service, pods: &[&Arc<Pod>]) -> Endpoints {
    let publish_not_ready = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    // ports → (ready, not ready) addresses
    type Group = (Vec<EndpointAddress>, Vec<EndpointAddress>);
    let mut groups: BTreeMap<Vec<ResolvedPort>, Group> = BTreeMap::new();
    for p in pods.iter().filter(|p| !is_terminating(p)) {
        let Some(ip) = pod_ip(p) else { continue };
        let ports = resolved_ports(svc, p);
        if ports.is_empty() && !service_ports(svc).is_empty() {
            continue;
        }
        let addr = EndpointAddress {
            ip: ip.to_string(),
            node_name: node_name(p).map(String::from),
            target_ref: Some(target_ref(p)),
            ..Default::default()
        };
        let g = groups.entry(ports).or_default();
        if publish_not_ready || is_ready(p) {
            g.0.push(addr);
        } else {
            g.1.push(addr);
        }
    }
    let subsets: Vec<EndpointSubset> = groups
        .into_iter()
        .map(|(ports, (mut ready, mut not_ready))| {
            ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            not_ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then(|| {
                    ports
                        .into_iter()
                        .map(|(name, port, protocol)| EndpointPort {
                            name: (!name.is_empty()).then_some(name),
                            port,
                            protocol: Some(protocol),
                            ..Default::default()
                        })
                        .collect()
                }),
            }
        })
        .collect();
    Endpoints {
        metadata: ObjectMeta {
            name: svc.metadata.name.clone(),
            namespace: svc.metadata.namespace.clone(),
            labels: svc.metadata.labels.clone(),
            ..Default::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    }
}

fn family(ip: &str) -> &'static str {
    if ip.contains(':') {
        "IPv6"
    } else {
        "IPv4"
    }
}

/// The EndpointSlices for `svc`, per address family and port set, at most
/// `MAX_PER_SLICE` endpoints each. Terminating pods stay in with
/// `terminating: true` (proxies use them only when nothing else is left).
/// Names are `<service>-<family>-<n>` so the same state always maps to the
/// same objects and a sync rewrites only what changed.
pub fn build_slices(svc: &Service, pods: &[&Arc<Pod>]) -> Vec<EndpointSlice> {
    let svc_name = svc.metadata.name.clone().unwrap_or_default();
    let mut groups: BTreeMap<(&'static str, Vec<ResolvedPort>), Vec<Endpoint>> = BTreeMap::new();
    for p in pods {
        let Some(ip) = pod_ip(p) else { continue };
        let ports = resolved_ports(svc, p);
        let ready = is_ready(p) && !is_terminating(p);
        groups
            .entry((family(ip), ports))
            .or_default()
            .push(Endpoint {
                addresses: vec![ip.to_string()],
                conditions: Some(EndpointConditions {
                    ready: Some(ready),
                    serving: Some(is_ready(p)),
                    terminating: Some(is_terminating(p)),
                }),
                node_name: node_name(p).map(String::from),
                target_ref: Some(target_ref(p)),
                ..Default::default()
            });
    }
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.insert(SERVICE_NAME_LABEL.into(), svc_name.clone());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    let mut out = Vec::new();
    let mut seen_families = BTreeSet::new();
    let mut index_per_family: BTreeMap<&str, usize> = BTreeMap::new();
    for ((fam, ports), mut endpoints) in groups {
        seen_families.insert(fam);
        endpoints.sort_by(|a, b| a.addresses.cmp(&b.addresses));
        for chunk in endpoints.chunks(MAX_PER_SLICE) {
            let idx = index_per_family.entry(fam).or_default();
            out.push(slice(svc, &labels, fam, *idx, &ports, chunk.to_vec()));
            *idx += 1;
        }
    }
    // A service with no endpoints still gets one empty slice, so that
    // watchers can tell "no endpoints" from "not synced yet".
    if out.is_empty() {
        let ports: Vec<ResolvedPort> = Vec::new();
        out.push(slice(svc, &labels, "IPv4", 0, &ports, Vec::new()));
    }
    out
}

fn slice(
    svc: &Service,
    labels: &BTreeMap<String, String>,
    fam: &'static str,
    idx: usize,
    ports: &[ResolvedPort],
    endpoints: Vec<Endpoint>,
) -> EndpointSlice {
    let svc_name = svc.metadata.name.clone().unwrap_or_default();
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(format!("{svc_name}-{}-{idx}", fam.to_lowercase())),
            namespace: svc.metadata.namespace.clone(),
            labels: Some(labels.clone()),
            owner_references: super::replicas::owner_ref(svc).map(|mut o| {
                o.block_owner_deletion = Some(true);
                vec![o]
            }),
            ..Default::default()
        },
        address_type: fam.into(),
        endpoints,
        ports: Some(
            ports
                .iter()
                .map(|(name, port, protocol)| SlicePort {
                    name: Some(name.clone()),
                    port: Some(*port),
                    protocol: Some(protocol.clone()),
                    app_protocol: None,
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, PodCondition, PodSpec, PodStatus, ServiceSpec,
    };

    fn svc(target: IntOrString) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("svc-uid".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                selector: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    target_port: Some(target),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn pod(name: &str, ip: &str, ready: bool, port: i32) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("node-1".into()),
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![ContainerPort {
                        name: Some("web".into()),
                        container_port: port,
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                pod_ip: Some(ip.into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        })
    }

    #[test]
    fn named_ports_resolve_per_pod_and_split_subsets() {
        let s = svc(IntOrString::String("web".into()));
        let pods = [
            pod("a", "10.244.1.2", true, 8080),
            pod("b", "10.244.1.3", false, 8080),
            pod("c", "10.244.2.2", true, 9090),
        ];
        let sel = selected(&s, &pods).unwrap();
        let ep = build_endpoints(&s, &sel);
        let subsets = ep.subsets.unwrap();
        assert_eq!(subsets.len(), 2);
        let s8080 = subsets
            .iter()
            .find(|x| x.ports.as_ref().unwrap()[0].port == 8080)
            .unwrap();
        assert_eq!(s8080.addresses.as_ref().unwrap()[0].ip, "10.244.1.2");
        assert_eq!(
            s8080.not_ready_addresses.as_ref().unwrap()[0].ip,
            "10.244.1.3"
        );
    }

    #[test]
    fn slices_carry_conditions_and_labels() {
        let s = svc(IntOrString::Int(8080));
        let pods = [
            pod("a", "10.244.1.2", true, 8080),
            pod("b", "10.244.1.3", false, 8080),
        ];
        let sel = selected(&s, &pods).unwrap();
        let slices = build_slices(&s, &sel);
        assert_eq!(slices.len(), 1);
        let sl = &slices[0];
        assert_eq!(sl.metadata.name.as_deref(), Some("web-ipv4-0"));
        assert_eq!(
            sl.metadata.labels.as_ref().unwrap()[SERVICE_NAME_LABEL],
            "web"
        );
        assert_eq!(sl.endpoints.len(), 2);
        let ready: Vec<_> = sl
            .endpoints
            .iter()
            .map(|e| e.conditions.as_ref().unwrap().ready.unwrap())
            .collect();
        assert_eq!(ready, vec![true, false]);
    }

    #[test]
    fn no_pods_is_one_empty_slice_and_no_subsets() {
        let s = svc(IntOrString::Int(80));
        assert!(build_endpoints(&s, &[]).subsets.is_none());
        let slices = build_slices(&s, &[]);
        assert_eq!(slices.len(), 1);
        assert!(slices[0].endpoints.is_empty());
    }
}
