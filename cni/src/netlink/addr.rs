//! Interface addresses. Must never remove an address (DEL removes the whole
//! link instead).

use std::net::IpAddr;

use futures::TryStreamExt;
use ipnetwork::IpNetwork;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
use rtnetlink::Handle;

use super::{errno, NetlinkError};

/// Adds `addr` to link `index`; already present is success. IPv6 addresses
/// skip DAD: the pod's address is unique by IPAM, and a tentative address
/// would make the default route wait.
pub async fn ensure(h: &Handle, index: u32, addr: IpNetwork) -> Result<(), NetlinkError> {
    let mut req = h.address().add(index, addr.ip(), addr.prefix());
    if addr.is_ipv6() {
        req.message_mut()
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    match req.execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(NetlinkError::request(format!(
            "add address {addr} to link {index}"
        ))(e)),
    }
}

/// Addresses on link `index`.
pub async fn list(h: &Handle, index: u32) -> Result<Vec<IpNetwork>, NetlinkError> {
    let mut out = Vec::new();
    let mut stream = h.address().get().set_link_index_filter(index).execute();
    while let Some(msg) = stream
        .try_next()
        .await
        .map_err(NetlinkError::request(format!(
            "list addresses of link {index}"
        )))?
    {
        let ip = msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        });
        if let Some(ip) = ip {
            if let Ok(net) = IpNetwork::new(ip, msg.header.prefix_len) {
                out.push(net);
            }
        }
    }
    Ok(out)
}

pub fn contains(list: &[IpNetwork], addr: IpAddr, prefix: u8) -> bool {
    list.iter().any(|n| n.ip() == addr && n.prefix() == prefix)
}
