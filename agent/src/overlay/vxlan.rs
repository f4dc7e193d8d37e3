//! Desired kernel state for the VXLAN and host-gw backends.
//!
//! Design note (after flannel's vxlan backend): one VXLAN device per node,
//! learning off, and for each peer exactly three entries: a route to the
//! peer's subnet via the peer's `.0` address, on-link on the device; a
//! permanent neighbour entry `.0 → peer VTEP MAC`; and an FDB entry
//! `peer VTEP MAC → peer public IP`. The route picks the device and a next
//! hop, the neighbour gives the inner Ethernet destination without ARP, and
//! the FDB gives the outer IP destination without multicast or learning.
//! Nothing is discovered at packet time, so the kernel never drops the first
//! packets to a new peer and nothing depends on the agent being up. With
//! DirectRouting (and for host-gw), a peer on the same underlay subnet gets
//! only a plain route via its public IP.

use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

use super::config::{Backend, NetworkConfig};
use super::dataplane::{Desired, Route, VxlanLink};
use super::lease_store::Lease;
use super::subnet;
use super::types::{NodeIp, Vni, VtepMac};

/// VXLAN over IPv4 costs 50 bytes of headers.
pub const VXLAN_OVERHEAD: u32 = 50;

/// Device name for a VNI: `capstan.<vni>`.
pub fn device_name(vni: Vni) -> String {
    format!("capstan.{vni}")
}

/// The node's underlay interface, as found at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Underlay {
    pub name: String,
    pub index: u32,
    pub mtu: u32,
    /// The interface's address with its prefix (the underlay subnet).
    pub addr: Ipv4Network,
}

impl Underlay {
    pub fn public_ip(&self) -> NodeIp {
        NodeIp(self.addr.ip())
    }

    fn shares_link_with(&self, ip: Ipv4Addr) -> bool {
        self.addr.contains(ip)
    }
}

/// This node's part of the overlay.
#[derive(Clone, Debug)]
pub struct Local {
    pub underlay: Underlay,
    pub subnet: Ipv4Network,
    /// VTEP MAC (VXLAN backend only).
    pub mac: Option<VtepMac>,
}

/// Pod MTU for this backend.
pub fn pod_mtu(cfg: &NetworkConfig, underlay: &Underlay) -> u32 {
    match cfg.backend {
        Backend::Vxlan { .. } => underlay.mtu.saturating_sub(VXLAN_OVERHEAD),
        Backend::HostGw => underlay.mtu,
    }
}

/// A peer that cannot be reached with this backend, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub subnet: Ipv4Network,
    pub reason: &'static str,
}

/// Desired state for `local` given every lease (its own is ignored).
pub fn desired(cfg: &NetworkConfig, local: &Local, leases: &[Lease]) -> (Desired, Vec<Skipped>) {
    let mut d = Desired::default();
    let mut skipped = Vec::new();
    let (vni, port, direct) = match cfg.backend {
        Backend::Vxlan {
            vni,
            port,
            direct_routing,
        } => (Some(vni), port, direct_routing),
        Backend::HostGw => (None, 0, true),
    };
    let dev = vni.map(device_name);
    if let (Some(vni), Some(dev), Some(mac)) = (vni, &dev, local.mac) {
        d.vxlan = Some(VxlanLink {
            name: dev.clone(),
            vni,
            port,
            local: local.underlay.public_ip(),
            underlay_index: local.underlay.index,
            mac,
            mtu: pod_mtu(cfg, &local.underlay),
        });
        if let Ok(a) = Ipv4Network::new(subnet::vtep_addr(local.subnet), 32) {
            d.addresses.insert(a);
        }
    }
    for lease in leases {
        let peer_ip = lease.attrs.public_ip;
        if lease.subnet == local.subnet
            || peer_ip == local.underlay.public_ip()
            || lease.subnet.prefix() != cfg.subnet_len
            || !cfg.network.contains(lease.subnet.network())
        {
            continue;
        }
        if direct && local.underlay.shares_link_with(peer_ip.0) {
            d.routes.insert(
                lease.subnet,
                Route {
                    dst: lease.subnet,
                    gateway: peer_ip.0,
                    dev: local.underlay.name.clone(),
                    onlink: false,
                },
            );
            continue;
        }
        let Some(dev) = &dev else {
            skipped.push(Skipped {
                subnet: lease.subnet,
                reason: "host-gw needs peers on the same underlay subnet",
            });
            continue;
        };
        let Some(mac) = lease
            .attrs
            .backend_data
            .vtep_mac
            .filter(|_| lease.attrs.backend_type == "vxlan")
        else {
            skipped.push(Skipped {
                subnet: lease.subnet,
                reason: "peer lease has no vxlan backend data",
            });
            continue;
        };
        let gw = subnet::vtep_addr(lease.subnet);
        d.routes.insert(
            lease.subnet,
            Route {
                dst: lease.subnet,
                gateway: gw,
                dev: dev.clone(),
                onlink: true,
            },
        );
        d.neighs.insert(gw, mac);
        d.fdb.insert(mac, peer_ip);
    }
    (d, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overlay::lease_store::{BackendData, LeaseAttrs, LeaseId};

    fn underlay() -> Underlay {
        Underlay {
            name: "eth0".into(),
            index: 2,
            mtu: 1500,
            addr: "192.168.250.11/24".parse().unwrap(),
        }
    }

    fn local() -> Local {
        Local {
            underlay: underlay(),
            subnet: "10.244.1.0/24".parse().unwrap(),
            mac: Some(VtepMac([2, 0, 0, 0, 0, 1])),
        }
    }

    fn lease(subnet: &str, ip: &str, mac: u8) -> Lease {
        Lease {
            subnet: subnet.parse().unwrap(),
            attrs: LeaseAttrs {
                public_ip: NodeIp(ip.parse().unwrap()),
                backend_type: "vxlan".into(),
                backend_data: BackendData {
                    vtep_mac: Some(VtepMac([2, 0, 0, 0, 0, mac])),
                },
                node_name: String::new(),
            },
            id: LeaseId(1),
            mod_revision: 1,
        }
    }

    fn cfg(backend: Backend) -> NetworkConfig {
        NetworkConfig {
            network: "10.244.0.0/16".parse().unwrap(),
            subnet_len: 24,
            ipv6_network: None,
            backend,
        }
    }

    const VX: Backend = Backend::Vxlan {
        vni: Vni(1),
        port: 8472,
        direct_routing: false,
    };

    #[test]
    fn vxlan_gives_one_route_neigh_fdb_per_peer_and_skips_self() {
        let leases = [
            lease("10.244.1.0/24", "192.168.250.11", 1),
            lease("10.244.2.0/24", "192.168.250.12", 2),
            lease("10.244.3.0/24", "10.0.0.13", 3),
        ];
        let (d, skipped) = desired(&cfg(VX), &local(), &leases);
        assert!(skipped.is_empty());
        let link = d.vxlan.unwrap();
        assert_eq!(link.name, "capstan.1");
        assert_eq!(link.mtu, 1450);
        assert_eq!(link.local, NodeIp("192.168.250.11".parse().unwrap()));
        assert_eq!(
            d.addresses.iter().collect::<Vec<_>>(),
            vec![&"10.244.1.0/32".parse::<Ipv4Network>().unwrap()]
        );
        assert_eq!(d.routes.len(), 2);
        let r = &d.routes[&"10.244.2.0/24".parse().unwrap()];
        assert_eq!(r.gateway, Ipv4Addr::new(10, 244, 2, 0));
        assert!(r.onlink);
        assert_eq!(r.dev, "capstan.1");
        assert_eq!(
            d.neighs[&Ipv4Addr::new(10, 244, 3, 0)],
            VtepMac([2, 0, 0, 0, 0, 3])
        );
        assert_eq!(
            d.fdb[&VtepMac([2, 0, 0, 0, 0, 3])],
            NodeIp("10.0.0.13".parse().unwrap())
        );
    }

    #[test]
    fn direct_routing_uses_plain_routes_for_same_link_peers() {
        let leases = [
            lease("10.244.2.0/24", "192.168.250.12", 2),
            lease("10.244.3.0/24", "10.0.0.13", 3),
        ];
        let (d, _) = desired(
            &cfg(Backend::Vxlan {
                vni: Vni(1),
                port: 8472,
                direct_routing: true,
            }),
            &local(),
            &leases,
        );
        let r = &d.routes[&"10.244.2.0/24".parse().unwrap()];
        assert_eq!(
            (r.gateway, r.dev.as_str(), r.onlink),
            (Ipv4Addr::new(192, 168, 250, 12), "eth0", false)
        );
        let r = &d.routes[&"10.244.3.0/24".parse().unwrap()];
        assert_eq!(r.dev, "capstan.1");
        assert_eq!(d.neighs.len(), 1);
        assert_eq!(d.fdb.len(), 1);
    }

    #[test]
    fn host_gw_routes_same_link_peers_and_skips_others() {
        let leases = [
            lease("10.244.2.0/24", "192.168.250.12", 2),
            lease("10.244.3.0/24", "10.0.0.13", 3),
        ];
        let mut l = local();
        l.mac = None;
        let (d, skipped) = desired(&cfg(Backend::HostGw), &l, &leases);
        assert!(d.vxlan.is_none());
        assert!(d.addresses.is_empty());
        assert_eq!(d.routes.len(), 1);
        assert_eq!(skipped.len(), 1);
        assert_eq!(
            skipped[0].subnet,
            "10.244.3.0/24".parse::<Ipv4Network>().unwrap()
        );
        assert_eq!(pod_mtu(&cfg(Backend::HostGw), &underlay()), 1500);
    }

    #[test]
    fn peers_without_vxlan_data_or_outside_network_are_skipped() {
        let mut no_mac = lease("10.244.2.0/24", "192.168.250.12", 2);
        no_mac.attrs.backend_data.vtep_mac = None;
        let outside = lease("10.9.2.0/24", "192.168.250.13", 3);
        let (d, skipped) = desired(&cfg(VX), &local(), &[no_mac, outside]);
        assert!(d.routes.is_empty());
        assert_eq!(skipped.len(), 1);
    }
}
