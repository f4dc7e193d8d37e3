//! Service → the service ports the proxy programs. Headless and
//! ExternalName services yield nothing; unparsable addresses are skipped
//! (the API server validates them, a proxy must not fall over on one).

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;

use super::types::{Protocol, ServiceKey, ServicePortName};

/// kube-proxy's default when sessionAffinity is ClientIP without a timeout.
pub const DEFAULT_AFFINITY_TIMEOUT_S: u32 = 10800;

/// What the dataplane needs to know about one port of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortInfo {
    pub cluster_ips: Vec<IpAddr>,
    pub port: u16,
    pub protocol: Protocol,
    pub node_port: Option<u16>,
    pub external_ips: Vec<IpAddr>,
    pub load_balancer_ips: Vec<IpAddr>,
    /// ClientIP session affinity timeout in seconds, when affinity is on.
    pub affinity_timeout_s: Option<u32>,
    /// externalTrafficPolicy: Local.
    pub external_local: bool,
    /// internalTrafficPolicy: Local.
    pub internal_local: bool,
    pub health_check_node_port: Option<u16>,
}

impl ServicePortInfo {
    /// Whether the port is reachable from outside the cluster network
    /// (NodePort, externalIPs or load-balancer ingress).
    pub fn has_external(&self) -> bool {
        self.node_port.is_some()
            || !self.external_ips.is_empty()
            || !self.load_balancer_ips.is_empty()
    }
}

fn parse_ips<'a>(ips: impl IntoIterator<Item = &'a String>) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = ips.into_iter().filter_map(|s| s.parse().ok()).collect();
    out.sort();
    out.dedup();
    out
}

fn port_u16(p: i32) -> Option<u16> {
    u16::try_from(p).ok().filter(|p| *p != 0)
}

/// The service ports of `svc`, keyed by their names.
pub fn service_ports(svc: &Service) -> Vec<(ServicePortName, ServicePortInfo)> {
    let Some(spec) = &svc.spec else {
        return Vec::new();
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return Vec::new();
    }
    let mut cluster_ips: Vec<&String> = spec.cluster_ips.iter().flatten().collect();
    if cluster_ips.is_empty() {
        cluster_ips.extend(spec.cluster_ip.iter());
    }
    let cluster_ips = parse_ips(cluster_ips);
    if cluster_ips.is_empty() {
        // Headless ("None") or not yet allocated.
        return Vec::new();
    }
    let key = ServiceKey::new(
        svc.metadata.namespace.as_deref().unwrap_or("default"),
        svc.metadata.name.as_deref().unwrap_or_default(),
    );
    let external_ips = parse_ips(spec.external_ips.iter().flatten());
    let load_balancer_ips = parse_ips(
        svc.status
            .iter()
            .filter_map(|s| s.load_balancer.as_ref())
            .flat_map(|lb| lb.ingress.iter().flatten())
            .filter_map(|i| i.ip.as_ref()),
    );
    let affinity_timeout_s = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .filter(|t| *t > 0)
            .unwrap_or(DEFAULT_AFFINITY_TIMEOUT_S)
    });
    let external_local = spec.external_traffic_policy.as_deref() == Some("Local");
    let internal_local = spec.internal_traffic_policy.as_deref() == Some("Local");
    let health_check_node_port = spec
        .health_check_node_port
        .and_then(port_u16)
        .filter(|_| external_local);
    spec.ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let protocol = Protocol::from_k8s(p.protocol.as_deref())?;
            let port = port_u16(p.port)?;
            let name = ServicePortName {
                service: key.clone(),
                port_name: p.name.clone().unwrap_or_default(),
                protocol,
            };
            Some((
                name,
                ServicePortInfo {
                    cluster_ips: cluster_ips.clone(),
                    port,
                    protocol,
                    node_port: p.node_port.and_then(port_u16),
                    external_ips: external_ips.clone(),
                    load_balancer_ips: load_balancer_ips.clone(),
                    affinity_timeout_s,
                    external_local,
                    internal_local,
                    health_check_node_port,
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ClientIPConfig, LoadBalancerIngress, LoadBalancerStatus, ServicePort, ServiceSpec,
        ServiceStatus, SessionAffinityConfig,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn svc(spec: ServiceSpec) -> Service {
        Service {
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                name: Some("web".into()),
                ..Default::default()
            },
            spec: Some(spec),
            status: None,
        }
    }

    #[test]
    fn cluster_ip_port_defaults_to_tcp() {
        let s = svc(ServiceSpec {
            cluster_ips: Some(vec!["10.96.0.10".into(), "fd00::10".into()]),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                ..Default::default()
            }]),
            ..Default::default()
        });
        let ports = service_ports(&s);
        assert_eq!(ports.len(), 1);
        let (name, info) = &ports[0];
        assert_eq!(name.to_string(), "ns/web/tcp/http");
        assert_eq!(info.cluster_ips.len(), 2);
        assert!(!info.has_external());
        assert_eq!(info.affinity_timeout_s, None);
    }

    #[test]
    fn headless_and_external_name_are_skipped() {
        let headless = svc(ServiceSpec {
            cluster_ip: Some("None".into()),
            ports: Some(vec![ServicePort {
                port: 80,
                ..Default::default()
            }]),
            ..Default::default()
        });
        assert!(service_ports(&headless).is_empty());
        let ext = svc(ServiceSpec {
            type_: Some("ExternalName".into()),
            cluster_ip: Some("10.96.0.1".into()),
            ..Default::default()
        });
        assert!(service_ports(&ext).is_empty());
    }

    #[test]
    fn load_balancer_local_with_affinity() {
        let mut s = svc(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            cluster_ip: Some("10.96.0.11".into()),
            external_ips: Some(vec!["192.0.2.7".into(), "bogus".into()]),
            external_traffic_policy: Some("Local".into()),
            health_check_node_port: Some(30999),
            session_affinity: Some("ClientIP".into()),
            session_affinity_config: Some(SessionAffinityConfig {
                client_ip: Some(ClientIPConfig {
                    timeout_seconds: Some(5),
                }),
            }),
            ports: Some(vec![ServicePort {
                port: 53,
                protocol: Some("UDP".into()),
                node_port: Some(30053),
                ..Default::default()
            }]),
            ..Default::default()
        });
        s.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![LoadBalancerIngress {
                    ip: Some("198.51.100.1".into()),
                    ..Default::default()
                }]),
            }),
            ..Default::default()
        });
        let (name, info) = service_ports(&s).remove(0);
        assert_eq!(name.protocol, Protocol::Udp);
        assert_eq!(info.node_port, Some(30053));
        assert_eq!(
            info.external_ips,
            vec!["192.0.2.7".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(info.load_balancer_ips.len(), 1);
        assert!(info.external_local);
        assert_eq!(info.health_check_node_port, Some(30999));
        assert_eq!(info.affinity_timeout_s, Some(5));
    }
}
