//! A service port's destinations in one family (ClusterIPs, external and
//! load-balancer IPs, the NodePort), and where they go when the service
//! has no endpoint at all.

use std::net::IpAddr;

use crate::model::{IpFamily, ServicePortInfo};
use crate::nft::element::{Key, Value};
use crate::nft::skeleton::{NO_ENDPOINT_NODEPORTS_MAP, NO_ENDPOINT_SERVICES_MAP, REJECT_CHAIN};

use super::Rendered;

/// ClusterIPs of this family.
pub(super) fn cluster_ips(info: &ServicePortInfo, f: IpFamily) -> Vec<IpAddr> {
    info.cluster_ips
        .iter()
        .copied()
        .filter(|ip| IpFamily::of(ip) == f)
        .collect()
}

/// External and load-balancer IPs of this family.
pub(super) fn externals(info: &ServicePortInfo, f: IpFamily) -> impl Iterator<Item = &IpAddr> {
    info.external_ips
        .iter()
        .chain(info.load_balancer_ips.iter())
        .filter(move |ip| IpFamily::of(ip) == f)
}

/// The map key of one of the service's addresses.
pub(super) fn dest(info: &ServicePortInfo, addr: IpAddr) -> Key {
    Key::Dest {
        addr,
        proto: info.protocol,
        port: info.port,
    }
}

/// Every destination of a service without a usable endpoint anywhere goes
/// to the reject chain through the no-endpoint maps, which the filter
/// chains look up for new connections.
pub(super) fn reject(
    info: &ServicePortInfo,
    cluster_ips: &[IpAddr],
    f: IpFamily,
    out: &mut Rendered,
) {
    let reject_to = || Value::Goto(REJECT_CHAIN.to_string());
    for ip in cluster_ips.iter().chain(externals(info, f)) {
        out.elements
            .insert((NO_ENDPOINT_SERVICES_MAP, dest(info, *ip)), reject_to());
    }
    if let Some(np) = info.node_port {
        let key = Key::NodePort {
            proto: info.protocol,
            port: np,
        };
        out.elements
            .insert((NO_ENDPOINT_NODEPORTS_MAP, key), reject_to());
    }
}
