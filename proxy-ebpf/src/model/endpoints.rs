//! EndpointSlices → endpoints per service port, and the choice of which
//! endpoints take traffic (ready ones; serving-but-terminating ones only
//! when nothing is ready; node-local ones for the Local policies).

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::types::Protocol;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    pub node_name: Option<String>,
}

impl Endpoint {
    pub fn is_local(&self, node: &str) -> bool {
        self.node_name.as_deref() == Some(node)
    }
}

/// Endpoints of one service, by (port name, protocol), from its slices.
/// Sorted and de-duplicated, so equal inputs render equal rules.
pub fn endpoints_from_slices<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> BTreeMap<(String, Protocol), Vec<Endpoint>> {
    let mut out: BTreeMap<(String, Protocol), Vec<Endpoint>> = BTreeMap::new();
    for slice in slices {
        if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
            continue;
        }
        for port in slice.ports.iter().flatten() {
            let Some(protocol) = Protocol::from_k8s(port.protocol.as_deref()) else {
                continue;
            };
            let Some(number) = port.port.and_then(|p| u16::try_from(p).ok()) else {
                continue;
            };
            let list = out
                .entry((port.name.clone().unwrap_or_default(), protocol))
                .or_default();
            for ep in &slice.endpoints {
                // Only the first address counts (the API's own rule).
                let Some(ip) = ep.addresses.first().and_then(|a| a.parse().ok()) else {
                    continue;
                };
                let cond = ep.conditions.clone().unwrap_or_default();
                let ready = cond.ready.unwrap_or(true);
                list.push(Endpoint {
                    ip,
                    port: number,
                    ready,
                    serving: cond.serving.unwrap_or(ready),
                    terminating: cond.terminating.unwrap_or(false),
                    node_name: ep.node_name.clone(),
                });
            }
        }
    }
    for list in out.values_mut() {
        list.sort();
        list.dedup_by(|a, b| a.ip == b.ip && a.port == b.port);
    }
    out
}

/// The endpoints that take new connections: among `eps` (optionally only
/// those on `node`), the ready ones, or if none is ready the ones still
/// serving while terminating.
pub fn usable<'a>(eps: &'a [Endpoint], local_to: Option<&str>) -> Vec<&'a Endpoint> {
    let candidates: Vec<&Endpoint> = eps
        .iter()
        .filter(|e| local_to.is_none_or(|n| e.is_local(n)))
        .collect();
    let ready: Vec<&Endpoint> = candidates.iter().copied().filter(|e| e.ready).collect();
    if !ready.is_empty() {
        return ready;
    }
    candidates
        .into_iter()
        .filter(|e| e.serving && e.terminating)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::discovery::v1::{
        Endpoint as SliceEndpoint, EndpointConditions, EndpointPort,
    };

    fn ep(ip: &str, ready: bool, terminating: bool, node: &str) -> SliceEndpoint {
        SliceEndpoint {
            addresses: vec![ip.into()],
            conditions: Some(EndpointConditions {
                ready: Some(ready),
                serving: Some(true),
                terminating: Some(terminating),
            }),
            node_name: Some(node.into()),
            ..Default::default()
        }
    }

    fn slice(eps: Vec<SliceEndpoint>) -> EndpointSlice {
        EndpointSlice {
            address_type: "IPv4".into(),
            endpoints: eps,
            ports: Some(vec![EndpointPort {
                name: Some("http".into()),
                port: Some(8080),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn slices_merge_and_dedup_by_port_name() {
        let a = slice(vec![
            ep("10.0.0.2", true, false, "n1"),
            ep("10.0.0.1", true, false, "n2"),
        ]);
        let b = slice(vec![ep("10.0.0.1", true, false, "n2")]);
        let m = endpoints_from_slices([&a, &b]);
        let list = &m[&("http".to_string(), Protocol::Tcp)];
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].ip.to_string(), "10.0.0.1");
        assert_eq!(list[0].port, 8080);
    }

    #[test]
    fn terminating_used_only_when_nothing_is_ready() {
        let s = slice(vec![
            ep("10.0.0.1", false, true, "n1"),
            ep("10.0.0.2", true, false, "n2"),
        ]);
        let m = endpoints_from_slices([&s]);
        let list = &m[&("http".to_string(), Protocol::Tcp)];
        let all = usable(list, None);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].ip.to_string(), "10.0.0.2");
        // On n1 only the terminating one exists: it is used.
        let local = usable(list, Some("n1"));
        assert_eq!(local.len(), 1);
        assert_eq!(local[0].ip.to_string(), "10.0.0.1");
        assert!(usable(list, Some("n3")).is_empty());
    }
}
