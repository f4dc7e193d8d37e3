//! Reading what the overlay owns from the kernel: its routes (by protocol),
//! its VXLAN device with addresses, neighbours and FDB entries, and stale
//! devices it made earlier. Read-only.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use ipnetwork::IpNetwork;
use rtnetlink::packet_route::address::{AddressMessage, AddressScope};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::RouteMessage;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::RouteMessageBuilder;

use crate::backend::dataplane::{owned_link_name, Actual, DataplaneError, ROUTE_PROTOCOL};
use crate::backend::netlink::parse::{ip_of, link_name, link_state, route_of};
use crate::backend::netlink::socket::{NetlinkDataplane, RT_TABLE_MAIN};
use crate::types::{NodeIp, VtepMac};

impl NetlinkDataplane {
    pub(super) async fn read_owned(&self, vxlan_name: &str) -> Result<Actual, DataplaneError> {
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
}
