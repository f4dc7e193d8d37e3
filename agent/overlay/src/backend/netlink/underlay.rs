//! Finding the underlay interface (by name, by address, or the default
//! route's) and its IPv4 address and MTU. Read-only.

use std::net::Ipv4Addr;

use futures::TryStreamExt;
use ipnetwork::Ipv4Network;
use rtnetlink::packet_route::address::AddressMessage;
use rtnetlink::packet_route::route::{RouteAttribute, RouteMessage};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::RouteMessageBuilder;

use crate::backend::dataplane::DataplaneError;
use crate::backend::netlink::parse::{address_of, link_mtu, link_name};
use crate::backend::netlink::socket::{NetlinkDataplane, RT_TABLE_MAIN};
use crate::backend::vxlan::Underlay;

impl NetlinkDataplane {
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
