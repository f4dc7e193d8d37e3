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
//!
//! Dual-stack: VXLAN carries Ethernet frames, so the same device carries
//! IPv6 too. Each peer with an IPv6 subnet adds a v6 route via its subnet's
//! `::` address (on-link) and a permanent v6 neighbour for that address;
//! the FDB entry is shared. flannel adds a second device (`flannel-v6.<VNI>`)
//! because it tunnels over an IPv6 underlay; Capstan's underlay is IPv4, and
//! a second device with the same VNI, port and local address is refused by
//! the kernel. The v6 VTEP address is the `::/128` of the node's v6 subnet.

use std::net::{IpAddr, Ipv4Addr};

use ipnetwork::{Ipv4Network, Ipv6Network};

use crate::backend::dataplane::{Desired, Route, VxlanLink};
use crate::subnet::arith;
use crate::subnet::config::{Backend, NetworkConfig};
use crate::subnet::lease::Lease;
use crate::types::{NodeIp, Vni, VtepMac};

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
    /// Dual-stack: this node's IPv6 subnet.
    pub ipv6_subnet: Option<Ipv6Network>,
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
    let v6_on = local.ipv6_subnet.is_some();
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
        if let Ok(a) = Ipv4Network::new(arith::vtep_addr(local.subnet), 32) {
            d.addresses.insert(a.into());
        }
        if let Some(Ok(a)) = local
            .ipv6_subnet
            .map(|s6| Ipv6Network::new(arith::vtep_addr_v6(s6), 128))
        {
            d.addresses.insert(a.into());
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
        let mac = lease
            .attrs
            .backend_data
            .vtep_mac
            .filter(|_| lease.attrs.backend_type == "vxlan");
        // IPv6 rides the tunnel whenever both ends have a v6 subnet.
        let v6 = lease
            .attrs
            .ipv6_subnet
            .filter(|s6| v6_on && cfg.ipv6_network.is_some_and(|n6| n6.contains(s6.network())));
        let v6_mac = lease
            .attrs
            .backend_v6_data
            .as_ref()
            .and_then(|b| b.vtep_mac)
            .or(mac);
        if let (Some(dev), Some(s6), Some(m6)) = (&dev, v6, v6_mac) {
            let gw = IpAddr::V6(arith::vtep_addr_v6(s6));
            d.routes.insert(
                s6.into(),
                Route {
                    dst: s6.into(),
                    gateway: gw,
                    dev: dev.clone(),
                    onlink: true,
                },
            );
            d.neighs.insert(gw, m6);
            d.fdb.insert(m6, peer_ip);
        } else if v6.is_some() {
            skipped.push(Skipped {
                subnet: lease.subnet,
                reason: "IPv6 needs the vxlan backend on both nodes",
            });
        }
        if direct && local.underlay.shares_link_with(peer_ip.0) {
            d.routes.insert(
                lease.subnet.into(),
                Route {
                    dst: lease.subnet.into(),
                    gateway: IpAddr::V4(peer_ip.0),
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
        let Some(mac) = mac else {
            skipped.push(Skipped {
                subnet: lease.subnet,
                reason: "peer lease has no vxlan backend data",
            });
            continue;
        };
        let gw = IpAddr::V4(arith::vtep_addr(lease.subnet));
        d.routes.insert(
            lease.subnet.into(),
            Route {
                dst: lease.subnet.into(),
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
    use crate::subnet::lease::{BackendData, LeaseAttrs, LeaseId};

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
            ipv6_subnet: None,
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
                ipv6_subnet: None,
                backend_v6_data: None,
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
            ipv6_subnet_len: 64,
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
            vec![&"10.244.1.0/32".parse::<ipnetwork::IpNetwork>().unwrap()]
        );
        assert_eq!(d.routes.len(), 2);
        let r = &d.routes[&"10.244.2.0/24".parse().unwrap()];
        assert_eq!(r.gateway, IpAddr::V4(Ipv4Addr::new(10, 244, 2, 0)));
        assert!(r.onlink);
        assert_eq!(r.dev, "capstan.1");
        assert_eq!(
            d.neighs[&IpAddr::V4(Ipv4Addr::new(10, 244, 3, 0))],
            VtepMac([2, 0, 0, 0, 0, 3])
        );
        assert_eq!(
            d.fdb[&VtepMac([2, 0, 0, 0, 0, 3])],
            NodeIp("10.0.0.13".parse().unwrap())
        );
    }

    #[test]
    fn dual_stack_adds_a_v6_address_route_and_neighbour_per_peer() {
        let mut c = cfg(VX);
        c.ipv6_network = Some("fd00:10:244::/56".parse().unwrap());
        let mut l = local();
        l.ipv6_subnet = c.ipv6_of(l.subnet);
        let mut p2 = lease("10.244.2.0/24", "192.168.250.12", 2);
        p2.attrs.ipv6_subnet = c.ipv6_of(p2.subnet);
        // A v4-only peer (older agent) still gets its v4 entries.
        let p3 = lease("10.244.3.0/24", "192.168.250.13", 3);
        let (d, skipped) = desired(&c, &l, &[p2, p3]);
        assert!(skipped.is_empty(), "{skipped:?}");
        assert!(d
            .addresses
            .contains(&"fd00:10:244:1::/128".parse().unwrap()));
        let s6: ipnetwork::IpNetwork = "fd00:10:244:2::/64".parse().unwrap();
        let r = &d.routes[&s6];
        let gw: IpAddr = "fd00:10:244:2::".parse().unwrap();
        assert_eq!(
            (r.gateway, r.dev.as_str(), r.onlink),
            (gw, "capstan.1", true)
        );
        assert_eq!(d.neighs[&gw], VtepMac([2, 0, 0, 0, 0, 2]));
        assert_eq!(d.routes.len(), 3);
        // One FDB entry per peer: both families share the tunnel.
        assert_eq!(d.fdb.len(), 2);
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
            (IpAddr::V4(Ipv4Addr::new(192, 168, 250, 12)), "eth0", false)
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
