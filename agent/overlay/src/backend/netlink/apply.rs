//! Applying one `Change` with rtnetlink. Deleting something already gone is
//! success, so every change is idempotent; nothing is read here beyond the
//! link index (and, for an address, the messages to delete).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use ipnetwork::IpNetwork;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::{RouteMessage, RouteProtocol};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{LinkUnspec, LinkVxlan, RouteMessageBuilder};

use crate::backend::dataplane::{Change, DataplaneError, Route, ROUTE_PROTOCOL};
use crate::backend::netlink::parse::ip_of;
use crate::backend::netlink::socket::NetlinkDataplane;
use capstan_nodenet::gone_ok;

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

impl NetlinkDataplane {
    pub(super) async fn apply_change(&self, change: &Change) -> Result<(), DataplaneError> {
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
