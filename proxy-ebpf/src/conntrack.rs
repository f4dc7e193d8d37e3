//! Stale UDP conntrack entries: when a UDP endpoint goes away, flows NATed
//! to it would keep black-holing until they time out, so they are deleted
//! (the `conntrack` tool, in the proxy's namespace). Which flows is a pure
//! function of {previous, current}; it must never delete flows of
//! endpoints that still exist.

use std::net::IpAddr;

use crate::model::{IpFamily, Protocol};
use crate::tracker::ServiceState;
use capstan_nodenet::Place;

/// One `conntrack -D` filter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum StaleFlow {
    /// Flows to a service address and port that were NATed to `endpoint`
    /// (None: any flow to the address, e.g. ones recorded while it rejected).
    ToService {
        addr: IpAddr,
        port: u16,
        endpoint: Option<IpAddr>,
    },
    /// Flows to a node port (any local address) NATed to `endpoint`
    /// (None: any flow to the port).
    ToNodePort {
        port: u16,
        family: IpFamily,
        endpoint: Option<IpAddr>,
    },
}

/// The UDP flows to clear after `previous` became `current`.
pub fn stale_flows(previous: &ServiceState, current: &ServiceState) -> Vec<StaleFlow> {
    let mut out = Vec::new();
    for (spn, (info, eps)) in previous {
        if spn.protocol != Protocol::Udp {
            continue;
        }
        let still = current.get(spn).map(|(_, e)| e.as_slice()).unwrap_or(&[]);
        for ep in eps {
            if still
                .iter()
                .any(|e| e.ip == ep.ip && e.port == ep.port && (e.ready || e.serving))
            {
                continue;
            }
            let addrs = info
                .cluster_ips
                .iter()
                .chain(&info.external_ips)
                .chain(&info.load_balancer_ips);
            for addr in addrs.filter(|a| IpFamily::of(a) == IpFamily::of(&ep.ip)) {
                out.push(StaleFlow::ToService {
                    addr: *addr,
                    port: info.port,
                    endpoint: Some(ep.ip),
                });
            }
            if let Some(np) = info.node_port {
                out.push(StaleFlow::ToNodePort {
                    port: np,
                    family: IpFamily::of(&ep.ip),
                    endpoint: Some(ep.ip),
                });
            }
        }
    }
    // A UDP service that had no endpoint and now has one: flows recorded
    // before (un-NATed: to the node itself for a NodePort, routed onwards
    // for an external IP) would keep a client that reuses its socket away
    // from the endpoints until they time out, which its retries prevent.
    // Every destination of the service, as kube-proxy.
    for (spn, (info, eps)) in current {
        let had = previous.get(spn).is_some_and(|(_, e)| !e.is_empty());
        if spn.protocol == Protocol::Udp && !eps.is_empty() && !had {
            let addrs = info
                .cluster_ips
                .iter()
                .chain(&info.external_ips)
                .chain(&info.load_balancer_ips);
            for addr in addrs {
                out.push(StaleFlow::ToService {
                    addr: *addr,
                    port: info.port,
                    endpoint: None,
                });
            }
            if let Some(np) = info.node_port {
                let mut families: Vec<IpFamily> =
                    info.cluster_ips.iter().map(IpFamily::of).collect();
                families.dedup();
                for family in families {
                    out.push(StaleFlow::ToNodePort {
                        port: np,
                        family,
                        endpoint: None,
                    });
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[derive(Debug, thiserror::Error)]
#[error("conntrack -D {args}: {reason}")]
pub struct ConntrackError {
    pub args: String,
    pub reason: String,
}

fn args(flow: &StaleFlow) -> Vec<String> {
    let family = |ip: &IpAddr| match IpFamily::of(ip) {
        IpFamily::V4 => "ipv4",
        IpFamily::V6 => "ipv6",
    };
    match flow {
        StaleFlow::ToService {
            addr,
            port,
            endpoint,
        } => {
            let mut a = vec![
                "-D".into(),
                "-f".into(),
                family(addr).into(),
                "-p".into(),
                "udp".into(),
                "--orig-dst".into(),
                addr.to_string(),
                "--orig-port-dst".into(),
                port.to_string(),
            ];
            if let Some(ep) = endpoint {
                a.extend(["--reply-src".into(), ep.to_string()]);
            }
            a
        }
        StaleFlow::ToNodePort {
            port,
            family: f,
            endpoint,
        } => {
            let mut a = vec![
                "-D".into(),
                "-f".into(),
                if *f == IpFamily::V4 { "ipv4" } else { "ipv6" }.into(),
                "-p".into(),
                "udp".into(),
                "--orig-port-dst".into(),
                port.to_string(),
            ];
            if let Some(ep) = endpoint {
                a.extend(["--reply-src".into(), ep.to_string()]);
            }
            a
        }
    }
}

/// Deletes the flows; "nothing matched" is success.
pub fn clear(place: &Place, flows: &[StaleFlow]) -> Result<(), ConntrackError> {
    for flow in flows {
        let a = args(flow);
        let joined = a.join(" ");
        let out = place
            .command("conntrack")
            .and_then(|mut c| c.args(&a).output())
            .map_err(|e| ConntrackError {
                args: joined.clone(),
                reason: e.to_string(),
            })?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() && !stderr.contains("0 flow entries") {
            return Err(ConntrackError {
                args: joined,
                reason: stderr.trim().to_string(),
            });
        }
        tracing::debug!(filter = %joined, "cleared stale UDP flows");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Endpoint, ServiceKey, ServicePortInfo, ServicePortName};

    fn state(proto: Protocol, eps: &[&str]) -> ServiceState {
        let spn = ServicePortName {
            service: ServiceKey::new("ns", "dns"),
            port_name: String::new(),
            protocol: proto,
        };
        let info = ServicePortInfo {
            cluster_ips: vec!["10.96.0.10".parse().unwrap()],
            port: 53,
            protocol: proto,
            node_port: Some(30053),
            external_ips: vec![],
            load_balancer_ips: vec![],
            affinity_timeout_s: None,
            external_local: false,
            internal_local: false,
            health_check_node_port: None,
        };
        let eps = eps
            .iter()
            .map(|ip| Endpoint {
                ip: ip.parse().unwrap(),
                port: 5353,
                ready: true,
                serving: true,
                terminating: false,
                node_name: None,
            })
            .collect();
        [(spn, (info, eps))].into()
    }

    #[test]
    fn removed_udp_endpoint_is_cleared_for_service_and_node_port() {
        let f = stale_flows(
            &state(Protocol::Udp, &["10.0.0.1", "10.0.0.2"]),
            &state(Protocol::Udp, &["10.0.0.2"]),
        );
        assert_eq!(f.len(), 2);
        assert!(f.contains(&StaleFlow::ToService {
            addr: "10.96.0.10".parse().unwrap(),
            port: 53,
            endpoint: Some("10.0.0.1".parse().unwrap())
        }));
        assert!(f.contains(&StaleFlow::ToNodePort {
            port: 30053,
            family: IpFamily::V4,
            endpoint: Some("10.0.0.1".parse().unwrap())
        }));
    }

    #[test]
    fn tcp_and_unchanged_endpoints_are_left_alone() {
        assert!(stale_flows(
            &state(Protocol::Tcp, &["10.0.0.1"]),
            &state(Protocol::Tcp, &[])
        )
        .is_empty());
        assert!(stale_flows(
            &state(Protocol::Udp, &["10.0.0.1"]),
            &state(Protocol::Udp, &["10.0.0.1"])
        )
        .is_empty());
    }

    #[test]
    fn first_udp_endpoint_clears_flows_to_every_destination() {
        let mut current = state(Protocol::Udp, &["10.0.0.1"]);
        for (info, _) in current.values_mut() {
            info.external_ips = vec!["192.0.2.7".parse().unwrap()];
            info.load_balancer_ips = vec!["198.51.100.1".parse().unwrap()];
        }
        let f = stale_flows(&state(Protocol::Udp, &[]), &current);
        let to = |addr: &str| StaleFlow::ToService {
            addr: addr.parse().unwrap(),
            port: 53,
            endpoint: None,
        };
        assert_eq!(
            f,
            vec![
                to("10.96.0.10"),
                to("192.0.2.7"),
                to("198.51.100.1"),
                StaleFlow::ToNodePort {
                    port: 30053,
                    family: IpFamily::V4,
                    endpoint: None
                },
            ]
        );
    }
}
