//! Routes in the main table. Must never replace a route it did not make:
//! adding an existing route is success, a conflicting one an error.

use std::net::IpAddr;

use futures::TryStreamExt;
use ipnetwork::IpNetwork;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, RouteMessageBuilder};

use super::{errno, NetlinkError};

/// A route as the plugin compares them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteEntry {
    pub dst: IpNetwork,
    pub gw: Option<IpAddr>,
    pub oif: Option<u32>,
}

pub async fn ensure(
    h: &Handle,
    dst: IpNetwork,
    gw: Option<IpAddr>,
    oif: u32,
) -> Result<(), NetlinkError> {
    let op = || format!("add route {dst} via {gw:?} dev {oif}");
    fn invalid<E: std::fmt::Display>(op: String) -> impl FnOnce(E) -> NetlinkError {
        move |e| NetlinkError::Unexpected {
            op,
            detail: e.to_string(),
        }
    }
    let mut b = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(dst.network(), dst.prefix())
        .map_err(invalid(op()))?
        .output_interface(oif);
    if let Some(gw) = gw {
        b = b.gateway(gw).map_err(invalid(op()))?;
    }
    match h.route().add(b.build()).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(NetlinkError::request(op())(e)),
    }
}

/// Main-table routes of one family.
pub async fn list(h: &Handle, v6: bool) -> Result<Vec<RouteEntry>, NetlinkError> {
    let mut query = if v6 {
        RouteMessageBuilder::<std::net::Ipv6Addr>::new().build()
    } else {
        RouteMessageBuilder::<std::net::Ipv4Addr>::new().build()
    };
    query.header.address_family = if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let mut stream = h.route().get(query).execute();
    let mut out = Vec::new();
    while let Some(msg) = stream
        .try_next()
        .await
        .map_err(NetlinkError::request("list routes"))?
    {
        if let Some(entry) = entry(&msg) {
            out.push(entry);
        }
    }
    Ok(out)
}

fn to_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn entry(msg: &RouteMessage) -> Option<RouteEntry> {
    let v6 = msg.header.address_family == AddressFamily::Inet6;
    let mut dst = None;
    let mut gw = None;
    let mut oif = None;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(a) => dst = to_ip(a),
            RouteAttribute::Gateway(a) => gw = to_ip(a),
            RouteAttribute::Oif(i) => oif = Some(*i),
            _ => {}
        }
    }
    let unspecified = if v6 {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    };
    let dst = IpNetwork::new(
        dst.unwrap_or(unspecified),
        msg.header.destination_prefix_length,
    )
    .ok()?;
    Some(RouteEntry { dst, gw, oif })
}
