//! Reading rtnetlink messages: addresses, link names, MTU and VXLAN
//! attributes, the overlay's routes. Pure functions over messages; no socket.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use ipnetwork::IpNetwork;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteFlags, RouteMessage};

use crate::backend::dataplane::{LinkState, Route};
use crate::types::{Vni, VtepMac};

pub(super) fn address_of(a: &AddressMessage) -> Option<Ipv4Addr> {
    let mut found = None;
    for attr in &a.attributes {
        match attr {
            AddressAttribute::Local(IpAddr::V4(ip)) => return Some(*ip),
            AddressAttribute::Address(IpAddr::V4(ip)) => found = Some(*ip),
            _ => {}
        }
    }
    found
}

/// The address of `a` in either family (`IFA_LOCAL` preferred).
pub(super) fn ip_of(a: &AddressMessage) -> Option<IpAddr> {
    let mut found = None;
    for attr in &a.attributes {
        match attr {
            AddressAttribute::Local(ip) => return Some(*ip),
            AddressAttribute::Address(ip) => found = Some(*ip),
            _ => {}
        }
    }
    found
}

pub(super) fn link_name(l: &LinkMessage) -> Option<&str> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

pub(super) fn link_mtu(l: &LinkMessage) -> Option<u32> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::Mtu(m) => Some(*m),
        _ => None,
    })
}

pub(super) fn link_state(l: &LinkMessage) -> LinkState {
    let mut s = LinkState {
        index: l.header.index,
        vni: None,
        port: None,
        local: None,
        underlay_index: None,
        learning: false,
        mac: None,
        mtu: link_mtu(l).unwrap_or(0),
        up: l.header.flags.contains(LinkFlags::Up),
    };
    for a in &l.attributes {
        match a {
            LinkAttribute::Address(b) => s.mac = VtepMac::from_slice(b),
            LinkAttribute::LinkInfo(infos) => {
                let is_vxlan = infos
                    .iter()
                    .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Vxlan)));
                for i in infos {
                    if let (true, LinkInfo::Data(InfoData::Vxlan(data))) = (is_vxlan, i) {
                        for d in data {
                            match d {
                                InfoVxlan::Id(v) => s.vni = Some(Vni(*v)),
                                InfoVxlan::Port(p) => s.port = Some(*p),
                                InfoVxlan::Local(ip) => s.local = Some(*ip),
                                InfoVxlan::Link(i) => s.underlay_index = Some(*i),
                                InfoVxlan::Learning(b) => s.learning = *b,
                                _ => {}
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    s
}

pub(super) fn route_of(r: &RouteMessage, names: &BTreeMap<u32, String>) -> Option<Route> {
    let (mut dst, mut gw, mut oif) = (None, None, None);
    for a in &r.attributes {
        match a {
            RouteAttribute::Destination(RouteAddress::Inet(ip)) => dst = Some(IpAddr::V4(*ip)),
            RouteAttribute::Destination(RouteAddress::Inet6(ip)) => dst = Some(IpAddr::V6(*ip)),
            RouteAttribute::Gateway(RouteAddress::Inet(ip)) => gw = Some(IpAddr::V4(*ip)),
            RouteAttribute::Gateway(RouteAddress::Inet6(ip)) => gw = Some(IpAddr::V6(*ip)),
            RouteAttribute::Oif(i) => oif = Some(*i),
            _ => {}
        }
    }
    let dst = IpNetwork::new(dst?, r.header.destination_prefix_length).ok()?;
    Some(Route {
        dst,
        gateway: gw?,
        dev: oif.and_then(|i| names.get(&i).cloned()).unwrap_or_default(),
        onlink: r.header.flags.contains(RouteFlags::Onlink),
    })
}
