//! A proxy per node and the Service/EndpointSlice builders the suites feed
//! it (the objects a kube watcher would deliver).

use std::time::Duration;

use capstan_lab::Lab;
use capstan_proxy::model::IpFamily;
use capstan_proxy::{Place, Proxy, ProxyConfig};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::network::*;

/// Polls `f` until it returns Some or the deadline passes.
pub fn proxy_for(lab: &Lab, node: usize) -> Proxy {
    let n = lab.node(node);
    let mut p = Proxy::new(ProxyConfig {
        node_name: n.name().to_string(),
        families: vec![
            (
                IpFamily::V4,
                Some((POD_CIDR_V4.0.parse().expect("cidr"), POD_CIDR_V4.1)),
            ),
            (
                IpFamily::V6,
                Some((POD_CIDR_V6.0.parse().expect("cidr"), POD_CIDR_V6.1)),
            ),
        ],
        place: Place::netns(format!("/run/netns/{}", n.netns_name())),
        full_resync_interval: Duration::from_secs(3600),
    });
    // Every sync checks for outside changes, so the tampering test is prompt.
    p.set_tamper_check_interval(Duration::ZERO);
    p
}

/// Service builder.
pub struct Svc {
    pub s: Service,
}

impl Svc {
    pub fn new(name: &str, cluster_ips: &[&str], port: i32, protocol: &str) -> Svc {
        Svc {
            s: Service {
                metadata: ObjectMeta {
                    namespace: Some("proxy-test".into()),
                    name: Some(name.into()),
                    ..Default::default()
                },
                spec: Some(ServiceSpec {
                    cluster_ips: Some(cluster_ips.iter().map(|s| s.to_string()).collect()),
                    cluster_ip: cluster_ips.first().map(|s| s.to_string()),
                    ports: Some(vec![ServicePort {
                        name: Some("p".into()),
                        port,
                        protocol: Some(protocol.into()),
                        target_port: Some(IntOrString::String("serve".into())),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                status: None,
            },
        }
    }

    fn spec(&mut self) -> &mut ServiceSpec {
        self.s.spec.get_or_insert_with(Default::default)
    }

    pub fn node_port(mut self, np: i32) -> Svc {
        let spec = self.spec();
        spec.type_ = Some("NodePort".into());
        if let Some(p) = spec.ports.as_mut().and_then(|p| p.first_mut()) {
            p.node_port = Some(np);
        }
        self
    }

    pub fn local(mut self, hc: i32) -> Svc {
        let spec = self.spec();
        spec.external_traffic_policy = Some("Local".into());
        spec.health_check_node_port = Some(hc);
        self
    }

    pub fn external_ips(mut self, ips: &[&str]) -> Svc {
        self.spec().external_ips = Some(ips.iter().map(|s| s.to_string()).collect());
        self
    }

    /// Type LoadBalancer with `ips` as the status' ingress IPs (what a
    /// load-balancer controller writes) and `node_port` for its port.
    pub fn load_balancer(mut self, ips: &[&str], node_port: i32) -> Svc {
        use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, ServiceStatus};
        self = self.node_port(node_port);
        self.spec().type_ = Some("LoadBalancer".into());
        self.s.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(
                    ips.iter()
                        .map(|ip| LoadBalancerIngress {
                            ip: Some(ip.to_string()),
                            ..Default::default()
                        })
                        .collect(),
                ),
            }),
            ..Default::default()
        });
        self
    }

    pub fn internal_local(mut self) -> Svc {
        self.spec().internal_traffic_policy = Some("Local".into());
        self
    }

    pub fn affinity(mut self, timeout: i32) -> Svc {
        use k8s_openapi::api::core::v1::{ClientIPConfig, SessionAffinityConfig};
        let spec = self.spec();
        spec.session_affinity = Some("ClientIP".into());
        spec.session_affinity_config = Some(SessionAffinityConfig {
            client_ip: Some(ClientIPConfig {
                timeout_seconds: Some(timeout),
            }),
        });
        self
    }
}

/// An EndpointSlice for service `svc` listing (pod, ready) pairs; the
/// port is the named target port "serve" resolved to `port`.
pub fn slice(
    svc: &str,
    family: IpFamily,
    port: u16,
    protocol: &str,
    pods: &[(&Pod, &str, bool)],
) -> EndpointSlice {
    let suffix = if family == IpFamily::V4 { "v4" } else { "v6" };
    EndpointSlice {
        metadata: ObjectMeta {
            namespace: Some("proxy-test".into()),
            name: Some(format!("{svc}-{suffix}")),
            labels: Some([("kubernetes.io/service-name".to_string(), svc.to_string())].into()),
            ..Default::default()
        },
        address_type: if family == IpFamily::V4 {
            "IPv4"
        } else {
            "IPv6"
        }
        .into(),
        endpoints: pods
            .iter()
            .map(|(p, node, ready)| Endpoint {
                addresses: vec![if family == IpFamily::V4 {
                    p.ip.to_string()
                } else {
                    p.ip6.to_string()
                }],
                conditions: Some(EndpointConditions {
                    ready: Some(*ready),
                    serving: Some(*ready),
                    terminating: Some(false),
                }),
                node_name: Some(node.to_string()),
                ..Default::default()
            })
            .collect(),
        ports: Some(vec![EndpointPort {
            name: Some("p".into()),
            port: Some(port as i32),
            protocol: Some(protocol.into()),
            ..Default::default()
        }]),
    }
}
