//! The real `Dataplane`: rtnetlink messages on one netlink socket in the
//! agent's own network namespace. Reads only what the overlay owns; deleting
//! something already gone is success, so every change is idempotent.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use ipnetwork::{IpNetwork, Ipv4Network};
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressMessage, AddressScope,
};
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteProtocol,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, LinkUnspec, LinkVxlan, RouteMessageBuilder};

use crate::backend::dataplane::{
    owned_link_name, Actual, Change, Dataplane, DataplaneError, LinkState, Route, ROUTE_PROTOCOL,
};
use crate::backend::vxlan::Underlay;
use crate::types::{NodeIp, Vni, VtepMac};

const RT_TABLE_MAIN: u8 = 254;

pub struct NetlinkDataplane {
    handle: Handle,
}

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

/// Deleting what is already gone is fine.
fn gone_ok(r: Result<(), rtnetlink::Error>) -> Result<(), rtnetlink::Error> {
    match r {
        Err(e)
            if matches!(
                errno(&e),
                Some(libc::ENOENT | libc::ESRCH | libc::ENODEV | libc::EADDRNOTAVAIL)
            ) =>
        {
            Ok(())
        }
        other => other,
    }
}

impl NetlinkDataplane {
    /// Opens a netlink socket in the current network namespace; the
    /// connection task runs on the current tokio runtime.
    pub fn open() -> Result<Self, DataplaneError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(DataplaneError::Open)?;
        tokio::spawn(conn);
        Ok(NetlinkDataplane { handle })
    }

    async fn links(&self) -> Result<Vec<LinkMessage>, DataplaneError> {
        self.handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|source| DataplaneError::Read {
                what: "links",
                source,
            })
    }

    async fn link_by_name(&self, name: &str) -> Result<Option<LinkMessage>, DataplaneError> {
        let r: Result<Vec<LinkMessage>, _> = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute()
            .try_collect()
            .await;
        match r {
            Ok(mut v) => Ok(v.pop()),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
            Err(source) => Err(DataplaneError::Read {
                what: "link",
                source,
            }),
        }
    }

    async fn index_of(&self, name: &str) -> Result<u32, DataplaneError> {
        self.link_by_name(name)
            .await?
            .map(|l| l.header.index)
            .ok_or_else(|| DataplaneError::NoSuchLink {
                name: name.to_string(),
            })
    }

    /// Finds the underlay interface: by name, by one of its IPv4 addresses,
    /// or (when `spec` is `None`) the interface of the default route.
    pub async fn find_underlay(&self, spec: Option<&str>) -> Result<Underlay, DataplaneError> {
        let links = self.links().await?;
        let addrs: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|source| DataplaneError::Read {
                what: "addresses",
                source,
            })?;
        let v4_of = |index: u32| -> Vec<Ipv4Network> {
            addrs
                .iter()
                .filter(|a| a.header.index == index && a.header.family == AddressFamily::Inet)
                .filter_map(|a| {
                    let ip = address_of(a)?;
                    Ipv4Network::new(ip, a.header.prefix_len).ok()
                })
                .collect()
        };
        let index = match spec {
            Some(s) => match s.parse::<Ipv4Addr>() {
                Ok(ip) => addrs
                    .iter()
                    .find(|a| address_of(a) == Some(ip))
                    .map(|a| a.header.index),
                Err(_) => links
                    .iter()
                    .find(|l| link_name(l) == Some(s))
                    .map(|l| l.header.index),
            },
            None => {
                let routes: Vec<RouteMessage> = self
                    .handle
                    .route()
                    .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
                    .execute()
                    .try_collect()
                    .await
                    .map_err(|source| DataplaneError::Read {
                        what: "routes",
                        source,
                    })?;
                routes
                    .iter()
                    .find(|r| {
                        r.header.destination_prefix_length == 0 && r.header.table == RT_TABLE_MAIN
                    })
                    .and_then(|r| {
                        r.attributes.iter().find_map(|a| match a {
                            RouteAttribute::Oif(i) => Some(*i),
                            _ => None,
                        })
                    })
            }
        };
        let what = spec.unwrap_or("default route").to_string();
        let index = index.ok_or(DataplaneError::NoSuchLink { name: what.clone() })?;
        let link = links
            .iter()
            .find(|l| l.header.index == index)
            .ok_or(DataplaneError::NoSuchLink { name: what.clone() })?;
        let mut nets = v4_of(index);
        if let Some(Ok(ip)) = spec.map(|s| s.parse::<Ipv4Addr>()) {
            nets.retain(|n| n.ip() == ip);
        }
        let addr = nets.first().copied().ok_or(DataplaneError::NoSuchLink {
            name: format!("{what} (no IPv4 address)"),
        })?;
        Ok(Underlay {
            name: link_name(link).unwrap_or_default().to_string(),
            index,
            mtu: link_mtu(link).unwrap_or(1500),
            addr,
        })
    }
}

fn address_of(a: &AddressMessage) -> Option<Ipv4Addr> {
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
fn ip_of(a: &AddressMessage) -> Option<IpAddr> {
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

fn link_name(l: &LinkMessage) -> Option<&str> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

fn link_mtu(l: &LinkMessage) -> Option<u32> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::Mtu(m) => Some(*m),
        _ => None,
    })
}

fn link_state(l: &LinkMessage) -> LinkState {
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

fn route_msg(r: &Route, oif: u32) -> RouteMessage {
    let proto = RouteProtocol::from(ROUTE_PROTOCOL);
    match (r.dst, r.gateway) {
        (IpNetwork::V6(dst), IpAddr::V6(gw)) => {
            let mut b = RouteMessageBuilder::<Ipv6Addr>::new()
                .destination_prefix(dst.network(), dst.prefix())
                .gateway(gw)
                .output_interface(oif)
                .protocol(proto);
            if r.onlink {
                b = b.onlink();
            }
            b.build()
        }
        (dst, gw) => {
            let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
                .output_interface(oif)
                .protocol(proto);
            if let IpNetwork::V4(dst) = dst {
                b = b.destination_prefix(dst.network(), dst.prefix());
            }
            if let IpAddr::V4(gw) = gw {
                b = b.gateway(gw);
            }
            if r.onlink {
                b = b.onlink();
            }
            b.build()
        }
    }
}

fn route_of(r: &RouteMessage, names: &BTreeMap<u32, String>) -> Option<Route> {
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

fn neigh_msg(
    family: AddressFamily,
    ifindex: u32,
    attrs: Vec<NeighbourAttribute>,
) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = family;
    m.header.ifindex = ifindex;
    m.header.state = NeighbourState::Permanent;
    if family == AddressFamily::Bridge {
        m.header.flags = NeighbourFlags::Own;
    }
    m.attributes = attrs;
    m
}

impl Dataplane for NetlinkDataplane {
    async fn read(&self, vxlan_name: &str) -> Result<Actual, DataplaneError> {
        let mut actual = Actual::default();
        let links = self.links().await?;
        let names: BTreeMap<u32, String> = links
            .iter()
            .filter_map(|l| Some((l.header.index, link_name(l)?.to_string())))
            .collect();
        actual.stale_links = links
            .iter()
            .filter_map(|l| {
                let name = link_name(l)?;
                (name != vxlan_name && owned_link_name(name) && link_state(l).vni.is_some())
                    .then(|| name.to_string())
            })
            .collect();

        for query in [
            RouteMessageBuilder::<Ipv4Addr>::new().build(),
            RouteMessageBuilder::<Ipv6Addr>::new().build(),
        ] {
            let routes: Vec<RouteMessage> = self
                .handle
                .route()
                .get(query)
                .execute()
                .try_collect()
                .await
                .map_err(|source| DataplaneError::Read {
                    what: "routes",
                    source,
                })?;
            for r in routes {
                if r.header.table != RT_TABLE_MAIN || u8::from(r.header.protocol) != ROUTE_PROTOCOL
                {
                    continue;
                }
                if let Some(route) = route_of(&r, &names) {
                    actual.routes.insert(route.dst, route);
                }
            }
        }

        let Some(link) = self.link_by_name(vxlan_name).await? else {
            return Ok(actual);
        };
        let state = link_state(&link);
        let index = state.index;
        actual.vxlan = Some(state);

        let addrs: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(|source| DataplaneError::Read {
                what: "addresses",
                source,
            })?;
        for a in addrs {
            // Link-local (fe80::/64 on every IPv6 device) is the kernel's.
            if a.header.index != index || a.header.scope != AddressScope::Universe {
                continue;
            }
            if let Some(ip) = ip_of(&a) {
                if let Ok(n) = IpNetwork::new(ip, a.header.prefix_len) {
                    actual.addresses.insert(n);
                }
            }
        }

        for family in [
            AddressFamily::Inet,
            AddressFamily::Inet6,
            AddressFamily::Bridge,
        ] {
            let neighs: Vec<NeighbourMessage> = self
                .handle
                .neighbours()
                .get()
                .set_address_family(family)
                .execute()
                .try_collect()
                .await
                .map_err(|source| DataplaneError::Read {
                    what: "neighbours",
                    source,
                })?;
            for n in neighs {
                if n.header.ifindex != index {
                    continue;
                }
                let (mut ip, mut mac) = (None, None);
                for a in &n.attributes {
                    match a {
                        NeighbourAttribute::Destination(NeighbourAddress::Inet(i)) => {
                            ip = Some(IpAddr::V4(*i))
                        }
                        NeighbourAttribute::Destination(NeighbourAddress::Inet6(i)) => {
                            ip = Some(IpAddr::V6(*i))
                        }
                        // AF_BRIDGE dumps carry the VXLAN remote as raw bytes.
                        NeighbourAttribute::Destination(NeighbourAddress::Other(b)) => {
                            ip = <[u8; 4]>::try_from(b.as_slice())
                                .ok()
                                .map(|b| IpAddr::V4(Ipv4Addr::from(b)))
                        }
                        NeighbourAttribute::LinkLayerAddress(b) => mac = VtepMac::from_slice(b),
                        _ => {}
                    }
                }
                let (Some(ip), Some(mac)) = (ip, mac) else {
                    continue;
                };
                if family == AddressFamily::Bridge {
                    if let IpAddr::V4(ip) = ip {
                        actual.fdb.insert((mac, NodeIp(ip)));
                    }
                } else if n.header.state == NeighbourState::Permanent {
                    actual.neighs.insert(ip, mac);
                }
            }
        }
        Ok(actual)
    }

    async fn apply(&self, change: &Change) -> Result<(), DataplaneError> {
        let h = &self.handle;
        match change {
            Change::CreateVxlan(l) => {
                let msg = LinkVxlan::new(&l.name, l.vni.0)
                    .dev(l.underlay_index)
                    .local(l.local.0)
                    .port(l.port)
                    .learning(false)
                    .mtu(l.mtu)
                    .address(l.mac.0.to_vec())
                    .build();
                h.link()
                    .add(msg)
                    .execute()
                    .await
                    .map_err(|source| DataplaneError::CreateVxlan {
                        name: l.name.clone(),
                        vni: l.vni,
                        source,
                    })
            }
            Change::DeleteLink { name } => {
                let Some(link) = self.link_by_name(name).await? else {
                    return Ok(());
                };
                gone_ok(h.link().del(link.header.index).execute().await).map_err(|source| {
                    DataplaneError::DeleteLink {
                        name: name.clone(),
                        source,
                    }
                })
            }
            Change::SetMtu { name, mtu } => {
                let index = self.index_of(name).await?;
                h.link()
                    .set(LinkUnspec::new_with_index(index).mtu(*mtu).build())
                    .execute()
                    .await
                    .map_err(|source| DataplaneError::SetLink {
                        name: name.clone(),
                        source,
                    })
            }
            Change::SetUp { name } => {
                let index = self.index_of(name).await?;
                h.link()
                    .set(LinkUnspec::new_with_index(index).up().build())
                    .execute()
                    .await
                    .map_err(|source| DataplaneError::SetLink {
                        name: name.clone(),
                        source,
                    })
            }
            Change::AddAddress { dev, addr } => {
                let index = self.index_of(dev).await?;
                let mut req = h.address().add(index, addr.ip(), addr.prefix()).replace();
                if addr.is_ipv6() {
                    // A VTEP address never needs duplicate detection, and a
                    // tentative one would be unusable for a second.
                    req.message_mut()
                        .attributes
                        .push(AddressAttribute::Flags(AddressFlags::Nodad));
                }
                req.execute()
                    .await
                    .map_err(|source| DataplaneError::Address {
                        op: "add",
                        dev: dev.clone(),
                        addr: *addr,
                        source: Box::new(source),
                    })
            }
            Change::DelAddress { dev, addr } => {
                let index = self.index_of(dev).await?;
                let err = |source| DataplaneError::Address {
                    op: "delete",
                    dev: dev.clone(),
                    addr: *addr,
                    source: Box::new(source),
                };
                let msgs: Vec<AddressMessage> = h
                    .address()
                    .get()
                    .set_link_index_filter(index)
                    .execute()
                    .try_collect()
                    .await
                    .map_err(err)?;
                for m in msgs {
                    if ip_of(&m) == Some(addr.ip()) && m.header.prefix_len == addr.prefix() {
                        gone_ok(h.address().del(m).execute().await).map_err(err)?;
                    }
                }
                Ok(())
            }
            Change::AddFdb(f) => {
                let index = self.index_of(&f.dev).await?;
                h.neighbours()
                    .add_bridge(index, &f.mac.0)
                    .flags(NeighbourFlags::Own)
                    .destination(IpAddr::V4(f.dst.0))
                    .replace()
                    .execute()
                    .await
                    .map_err(|source| DataplaneError::AddFdb {
                        vtep: f.mac,
                        dst: f.dst,
                        source,
                    })
            }
            Change::DelFdb(f) => {
                let index = self.index_of(&f.dev).await?;
                let msg = neigh_msg(
                    AddressFamily::Bridge,
                    index,
                    vec![
                        NeighbourAttribute::LinkLayerAddress(f.mac.0.to_vec()),
                        NeighbourAttribute::Destination(NeighbourAddress::Inet(f.dst.0)),
                    ],
                );
                gone_ok(h.neighbours().del(msg).execute().await).map_err(|source| {
                    DataplaneError::DelFdb {
                        vtep: f.mac,
                        dst: f.dst,
                        source,
                    }
                })
            }
            Change::SetNeigh(n) => {
                let index = self.index_of(&n.dev).await?;
                h.neighbours()
                    .add(index, n.ip)
                    .link_layer_address(&n.mac.0)
                    .state(NeighbourState::Permanent)
                    .replace()
                    .execute()
                    .await
                    .map_err(|source| DataplaneError::Neigh {
                        op: "set",
                        dev: n.dev.clone(),
                        ip: n.ip,
                        source: Box::new(source),
                    })
            }
            Change::DelNeigh(n) => {
                let index = self.index_of(&n.dev).await?;
                let (family, dst) = match n.ip {
                    IpAddr::V4(ip) => (AddressFamily::Inet, NeighbourAddress::Inet(ip)),
                    IpAddr::V6(ip) => (AddressFamily::Inet6, NeighbourAddress::Inet6(ip)),
                };
                let msg = neigh_msg(family, index, vec![NeighbourAttribute::Destination(dst)]);
                gone_ok(h.neighbours().del(msg).execute().await).map_err(|source| {
                    DataplaneError::Neigh {
                        op: "delete",
                        dev: n.dev.clone(),
                        ip: n.ip,
                        source: Box::new(source),
                    }
                })
            }
            Change::SetRoute(r) => {
                let index = self.index_of(&r.dev).await?;
                h.route()
                    .add(route_msg(r, index))
                    .replace()
                    .execute()
                    .await
                    .map_err(|source| DataplaneError::Route {
                        op: "set",
                        dst: r.dst,
                        source: Box::new(source),
                    })
            }
            Change::DelRoute(r) => {
                // The device may be gone (and the route with it).
                let Some(link) = self.link_by_name(&r.dev).await? else {
                    return Ok(());
                };
                gone_ok(
                    h.route()
                        .del(route_msg(r, link.header.index))
                        .execute()
                        .await,
                )
                .map_err(|source| DataplaneError::Route {
                    op: "delete",
                    dst: r.dst,
                    source: Box::new(source),
                })
            }
        }
    }
}
