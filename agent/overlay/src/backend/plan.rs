//! `plan(desired, actual)`: the difference between what the overlay wants in
//! the kernel and what is there, as an ordered list of changes. Pure: no I/O,
//! and an empty plan whenever the kernel is already right (nothing is ever
//! flushed and re-added).

use std::collections::BTreeSet;

use crate::backend::dataplane::{Actual, Change, Desired, Fdb, LinkState, Neigh, VxlanLink};

/// Ordered changes turning `actual` into `desired`. New state is put in place
/// before stale state is removed (FDB before neighbour before route on the
/// way in; route before neighbour before FDB on the way out), so a peer whose
/// entries change never loses its path in between.
pub fn plan(desired: &Desired, actual: &Actual) -> Vec<Change> {
    let mut out = Vec::new();
    // A recreated device takes its addresses, neighbours, FDB entries and
    // routes with it: plan the rest against an empty device.
    let mut actual = actual.clone();
    if let Some(want) = &desired.vxlan {
        match &actual.vxlan {
            None => out.push(Change::CreateVxlan(want.clone())),
            Some(have) if needs_recreate(want, have) => {
                out.push(Change::DeleteLink {
                    name: want.name.clone(),
                });
                out.push(Change::CreateVxlan(want.clone()));
                actual.routes.retain(|_, r| r.dev != want.name);
            }
            Some(have) => {
                if have.mtu != want.mtu {
                    out.push(Change::SetMtu {
                        name: want.name.clone(),
                        mtu: want.mtu,
                    });
                }
                if have.up {
                    // Device kept: its entries are real.
                } else {
                    out.push(Change::SetUp {
                        name: want.name.clone(),
                    });
                }
            }
        }
        let recreated = matches!(out.last(), Some(Change::CreateVxlan(_)));
        if recreated {
            actual.addresses.clear();
            actual.neighs.clear();
            actual.fdb.clear();
            out.push(Change::SetUp {
                name: want.name.clone(),
            });
        }
        for addr in desired.addresses.difference(&actual.addresses) {
            out.push(Change::AddAddress {
                dev: want.name.clone(),
                addr: *addr,
            });
        }
        for addr in actual.addresses.difference(&desired.addresses) {
            out.push(Change::DelAddress {
                dev: want.name.clone(),
                addr: *addr,
            });
        }
    }
    let dev = desired.vxlan.as_ref().map(|v| v.name.clone());

    // In: FDB, neighbours, routes.
    let want_fdb: BTreeSet<_> = desired.fdb.iter().map(|(m, ip)| (*m, *ip)).collect();
    if let Some(dev) = &dev {
        for (mac, dst) in want_fdb.difference(&actual.fdb) {
            out.push(Change::AddFdb(Fdb {
                dev: dev.clone(),
                mac: *mac,
                dst: *dst,
            }));
        }
        for (ip, mac) in &desired.neighs {
            if actual.neighs.get(ip) != Some(mac) {
                out.push(Change::SetNeigh(Neigh {
                    dev: dev.clone(),
                    ip: *ip,
                    mac: *mac,
                }));
            }
        }
    }
    for (dst, route) in &desired.routes {
        if actual.routes.get(dst) != Some(route) {
            out.push(Change::SetRoute(route.clone()));
        }
    }

    // Out: routes, neighbours, FDB.
    for (dst, route) in &actual.routes {
        if !desired.routes.contains_key(dst) {
            out.push(Change::DelRoute(route.clone()));
        }
    }
    if let Some(dev) = &dev {
        for (ip, mac) in &actual.neighs {
            if !desired.neighs.contains_key(ip) {
                out.push(Change::DelNeigh(Neigh {
                    dev: dev.clone(),
                    ip: *ip,
                    mac: *mac,
                }));
            }
        }
        for (mac, dst) in actual.fdb.difference(&want_fdb) {
            out.push(Change::DelFdb(Fdb {
                dev: dev.clone(),
                mac: *mac,
                dst: *dst,
            }));
        }
    }
    // Last: devices of an earlier VNI. Their routes were already moved
    // (replaced) onto the current device above, so no peer loses its path.
    for name in &actual.stale_links {
        if dev.as_ref() != Some(name) {
            out.push(Change::DeleteLink { name: name.clone() });
        }
    }
    out
}

/// Properties that cannot be changed on a live VXLAN device.
fn needs_recreate(want: &VxlanLink, have: &LinkState) -> bool {
    have.vni != Some(want.vni)
        || have.port != Some(want.port)
        || have.local != Some(want.local.0)
        || have.underlay_index != Some(want.underlay_index)
        || have.learning
        || have.mac != Some(want.mac)
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use ipnetwork::IpNetwork;

    use super::*;
    use crate::backend::dataplane::Route;
    use crate::types::{NodeIp, Vni, VtepMac};

    fn link() -> VxlanLink {
        VxlanLink {
            name: "capstan.1".into(),
            vni: Vni(1),
            port: 8472,
            local: NodeIp(Ipv4Addr::new(192, 168, 250, 11)),
            underlay_index: 2,
            mac: VtepMac([2, 0, 0, 0, 0, 1]),
            mtu: 1450,
        }
    }

    fn state_of(l: &VxlanLink) -> LinkState {
        LinkState {
            index: 5,
            vni: Some(l.vni),
            port: Some(l.port),
            local: Some(l.local.0),
            underlay_index: Some(l.underlay_index),
            learning: false,
            mac: Some(l.mac),
            mtu: l.mtu,
            up: true,
        }
    }

    fn peer_mac(n: u8) -> VtepMac {
        VtepMac([2, 0, 0, 0, 1, n])
    }

    fn with_peer(d: &mut Desired, n: u8) {
        let dst: IpNetwork = format!("10.244.{n}.0/24").parse().unwrap();
        d.routes.insert(
            dst,
            Route {
                dst,
                gateway: IpAddr::V4(Ipv4Addr::new(10, 244, n, 0)),
                dev: "capstan.1".into(),
                onlink: true,
            },
        );
        d.neighs
            .insert(IpAddr::V4(Ipv4Addr::new(10, 244, n, 0)), peer_mac(n));
        d.fdb
            .insert(peer_mac(n), NodeIp(Ipv4Addr::new(192, 168, 250, 10 + n)));
    }

    fn desired(peers: &[u8]) -> Desired {
        let mut d = Desired {
            vxlan: Some(link()),
            ..Default::default()
        };
        d.addresses.insert("10.244.1.0/32".parse().unwrap());
        for p in peers {
            with_peer(&mut d, *p);
        }
        d
    }

    /// The kernel state that exactly matches `d`.
    fn actual_of(d: &Desired) -> Actual {
        Actual {
            vxlan: d.vxlan.as_ref().map(state_of),
            addresses: d.addresses.clone(),
            routes: d.routes.clone(),
            neighs: d.neighs.clone(),
            fdb: d.fdb.iter().map(|(m, i)| (*m, *i)).collect(),
            stale_links: Default::default(),
        }
    }

    #[test]
    fn empty_kernel_gets_device_then_entries_in_order() {
        let d = desired(&[2]);
        let p = plan(&d, &Actual::default());
        let kinds: Vec<&str> = p
            .iter()
            .map(|c| match c {
                Change::CreateVxlan(_) => "create",
                Change::SetUp { .. } => "up",
                Change::AddAddress { .. } => "addr",
                Change::AddFdb(_) => "fdb",
                Change::SetNeigh(_) => "neigh",
                Change::SetRoute(_) => "route",
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(kinds, ["create", "up", "addr", "fdb", "neigh", "route"]);
    }

    #[test]
    fn matching_kernel_needs_nothing() {
        let d = desired(&[2, 3, 4]);
        assert_eq!(plan(&d, &actual_of(&d)), vec![]);
    }

    #[test]
    fn new_peer_adds_only_its_three_entries() {
        let before = desired(&[2]);
        let after = desired(&[2, 3]);
        let p = plan(&after, &actual_of(&before));
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(matches!(&p[0], Change::AddFdb(f) if f.mac == peer_mac(3)));
        assert!(matches!(&p[1], Change::SetNeigh(n) if n.mac == peer_mac(3)));
        assert!(matches!(&p[2], Change::SetRoute(r) if r.dst == "10.244.3.0/24".parse().unwrap()));
    }

    #[test]
    fn removed_peer_loses_route_then_neigh_then_fdb() {
        let before = desired(&[2, 3]);
        let after = desired(&[2]);
        let p = plan(&after, &actual_of(&before));
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(matches!(&p[0], Change::DelRoute(r) if r.dst == "10.244.3.0/24".parse().unwrap()));
        assert!(
            matches!(&p[1], Change::DelNeigh(n) if n.ip == IpAddr::V4(Ipv4Addr::new(10, 244, 3, 0)))
        );
        assert!(matches!(&p[2], Change::DelFdb(f) if f.mac == peer_mac(3)));
    }

    #[test]
    fn peer_with_new_mac_and_ip_is_replaced_without_touching_its_route() {
        let before = desired(&[2]);
        let mut after = desired(&[]);
        let new_mac = VtepMac([2, 9, 9, 9, 9, 9]);
        let new_ip = NodeIp(Ipv4Addr::new(192, 168, 250, 99));
        after.routes = before.routes.clone();
        after
            .neighs
            .insert(IpAddr::V4(Ipv4Addr::new(10, 244, 2, 0)), new_mac);
        after.fdb.insert(new_mac, new_ip);
        let p = plan(&after, &actual_of(&before));
        assert_eq!(
            p,
            vec![
                Change::AddFdb(Fdb {
                    dev: "capstan.1".into(),
                    mac: new_mac,
                    dst: new_ip
                }),
                Change::SetNeigh(Neigh {
                    dev: "capstan.1".into(),
                    ip: IpAddr::V4(Ipv4Addr::new(10, 244, 2, 0)),
                    mac: new_mac
                }),
                Change::DelFdb(Fdb {
                    dev: "capstan.1".into(),
                    mac: peer_mac(2),
                    dst: NodeIp(Ipv4Addr::new(192, 168, 250, 12))
                }),
            ]
        );
    }

    #[test]
    fn mtu_and_down_are_fixed_in_place() {
        let d = desired(&[2]);
        let mut a = actual_of(&d);
        if let Some(l) = a.vxlan.as_mut() {
            l.mtu = 1500;
            l.up = false;
        }
        let p = plan(&d, &a);
        assert_eq!(
            p,
            vec![
                Change::SetMtu {
                    name: "capstan.1".into(),
                    mtu: 1450
                },
                Change::SetUp {
                    name: "capstan.1".into()
                }
            ]
        );
    }

    #[test]
    fn wrong_vni_recreates_device_and_everything_on_it() {
        let d = desired(&[2]);
        let mut a = actual_of(&d);
        if let Some(l) = a.vxlan.as_mut() {
            l.vni = Some(Vni(42));
        }
        let p = plan(&d, &a);
        assert_eq!(
            p[0],
            Change::DeleteLink {
                name: "capstan.1".into()
            }
        );
        assert!(matches!(p[1], Change::CreateVxlan(_)));
        assert_eq!(p.len(), 2 + 1 + 1 + 3, "{p:?}");
    }

    #[test]
    fn device_of_an_old_vni_goes_after_its_routes_moved() {
        let d = desired(&[2]);
        let mut a = actual_of(&d);
        // The route still points at the old device.
        let dst: IpNetwork = "10.244.2.0/24".parse().unwrap();
        if let Some(r) = a.routes.get_mut(&dst) {
            r.dev = "capstan.7".into();
        }
        a.stale_links.insert("capstan.7".into());
        let p = plan(&d, &a);
        assert_eq!(
            p,
            vec![
                Change::SetRoute(d.routes[&dst].clone()),
                Change::DeleteLink {
                    name: "capstan.7".into()
                }
            ]
        );
        // Applied to the fake, a second plan is empty.
        let mut after = a.clone();
        after.stale_links.clear();
        after.routes = d.routes.clone();
        assert_eq!(plan(&d, &after), vec![]);
    }

    #[test]
    fn owned_names_are_capstan_dot_number_only() {
        use crate::backend::dataplane::owned_link_name;
        assert!(owned_link_name("capstan.1"));
        assert!(owned_link_name("capstan.4096"));
        for n in [
            "capstan0",
            "capstan.",
            "capstan.x",
            "flannel.1",
            "capstan.1a",
        ] {
            assert!(!owned_link_name(n), "{n}");
        }
    }

    #[test]
    fn ipv6_entries_are_planned_like_ipv4_ones() {
        let mut d = desired(&[2]);
        let s6: IpNetwork = "fd00:10:244:2::/64".parse().unwrap();
        let gw: IpAddr = "fd00:10:244:2::".parse().unwrap();
        d.addresses.insert("fd00:10:244:1::/128".parse().unwrap());
        d.routes.insert(
            s6,
            Route {
                dst: s6,
                gateway: gw,
                dev: "capstan.1".into(),
                onlink: true,
            },
        );
        d.neighs.insert(gw, peer_mac(2));
        let before = desired(&[2]);
        let p = plan(&d, &actual_of(&before));
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(matches!(&p[0], Change::AddAddress { addr, .. } if addr.is_ipv6()));
        assert!(matches!(&p[1], Change::SetNeigh(n) if n.ip == gw));
        assert!(matches!(&p[2], Change::SetRoute(r) if r.dst == s6));
        // Someone deletes the v6 route: only it comes back.
        let mut drifted = actual_of(&d);
        drifted.routes.remove(&s6);
        assert_eq!(
            plan(&d, &drifted),
            vec![Change::SetRoute(d.routes[&s6].clone())]
        );
    }

    #[test]
    fn stray_entries_on_our_device_are_removed() {
        let d = desired(&[2]);
        let mut a = actual_of(&d);
        a.addresses.insert("10.244.9.0/32".parse().unwrap());
        a.neighs
            .insert(IpAddr::V4(Ipv4Addr::new(10, 244, 9, 0)), peer_mac(9));
        let p = plan(&d, &a);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(matches!(&p[0], Change::DelAddress { .. }));
        assert!(matches!(&p[1], Change::DelNeigh(_)));
    }

    #[test]
    fn host_gw_has_no_device_and_only_routes() {
        let dst: IpNetwork = "10.244.2.0/24".parse().unwrap();
        let mut d = Desired::default();
        d.routes.insert(
            dst,
            Route {
                dst,
                gateway: IpAddr::V4(Ipv4Addr::new(192, 168, 250, 12)),
                dev: "eth0".into(),
                onlink: false,
            },
        );
        let p = plan(&d, &Actual::default());
        assert_eq!(p, vec![Change::SetRoute(d.routes[&dst].clone())]);
        assert_eq!(plan(&d, &actual_of(&d)), vec![]);
    }
}
