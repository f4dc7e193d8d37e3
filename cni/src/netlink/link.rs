//! Links: the node bridge, the pod's veth pair, lookups and deletion.
//! Must never delete a link it was not asked to by name or index.

use futures::{StreamExt, TryStreamExt};
use rtnetlink::packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_ECHO, NLM_F_EXCL, NLM_F_REQUEST,
};
use rtnetlink::packet_route::link::{
    InfoData, InfoVeth, LinkAttribute, LinkExtentMask, LinkFlags, LinkMessage,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth};

use super::{errno, NetlinkError};

/// What the plugin needs to know about a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    pub mac: Option<String>,
    pub mtu: Option<u32>,
    pub controller: Option<u32>,
    pub up: bool,
}

impl LinkInfo {
    fn from_message(msg: &LinkMessage) -> Self {
        let mut info = LinkInfo {
            index: msg.header.index,
            name: String::new(),
            mac: None,
            mtu: None,
            controller: None,
            up: msg.header.flags.contains(LinkFlags::Up),
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => info.name = n.clone(),
                LinkAttribute::Address(a) => info.mac = Some(format_mac(a)),
                LinkAttribute::Mtu(m) => info.mtu = Some(*m),
                LinkAttribute::Controller(c) => info.controller = Some(*c),
                _ => {}
            }
        }
        info
    }
}

/// A random locally administered unicast MAC (`salt` tells apart several
/// drawn by one process).
pub fn random_local_mac(salt: u32) -> [u8; 6] {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u32(salt);
    let r = h.finish().to_le_bytes();
    [(r[0] & 0xfe) | 0x02, r[1], r[2], r[3], r[4], r[5]]
}

pub fn format_mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The link called `name`, or None when there is none.
pub async fn by_name(h: &Handle, name: &str) -> Result<Option<LinkInfo>, NetlinkError> {
    // Without stats the kernel builds, and we parse, a much smaller answer.
    let mut stream = h
        .link()
        .get()
        .match_name(name.to_string())
        .set_filter_mask(AddressFamily::Unspec, vec![LinkExtentMask::SkipStats])
        .execute();
    match stream.try_next().await {
        Ok(Some(msg)) => Ok(Some(LinkInfo::from_message(&msg))),
        Ok(None) => Ok(None),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(NetlinkError::request(format!("get link {name}"))(e)),
    }
}

/// The bridge `name`, created up with `mtu` when absent. Concurrent ADDs
/// race to create it; the loser's EEXIST is success.
pub async fn ensure_bridge(h: &Handle, name: &str, mtu: u32) -> Result<LinkInfo, NetlinkError> {
    if let Some(info) = by_name(h, name).await? {
        if !info.up {
            set_up(h, info.index, name).await?;
        }
        return Ok(info);
    }
    // A fixed MAC: otherwise the kernel keeps switching the bridge to the
    // lowest port MAC as pods come and go, and neighbours' caches go stale.
    // Created down, so that DAD can be switched off before the link-local
    // address appears (see `link_local_without_dad`).
    let msg = LinkBridge::new(name)
        .mtu(mtu)
        .address(random_local_mac(0).to_vec())
        .build();
    let created = match h.link().add(msg).execute().await {
        Ok(()) => true,
        Err(e) if errno(&e) == Some(libc::EEXIST) => false,
        Err(e) => return Err(NetlinkError::request(format!("create bridge {name}"))(e)),
    };
    let mut info = by_name(h, name)
        .await?
        .ok_or_else(|| NetlinkError::Unexpected {
            op: format!("create bridge {name}"),
            detail: "bridge vanished right after creation".into(),
        })?;
    if created {
        link_local_without_dad(name);
    }
    if !info.up {
        set_up(h, info.index, name).await?;
        info.up = true;
    }
    Ok(info)
}

/// Switches IPv6 DAD off on a new bridge before it goes up. The kernel sends
/// a neighbour solicitation for a *forwarded* packet (traffic from another
/// node towards a pod) only from a non-tentative link-local address of the
/// outgoing device; with DAD that address stays tentative for 1-2 s after
/// the bridge comes up, and IPv6 traffic from other nodes to the first pods
/// stalled that long (measured in `overlay_kube`). The bridge's addresses
/// are ours alone (its MAC is random, the gateways come from IPAM), so DAD
/// has nothing to find. Best effort: without IPv6 (no such sysctl) or when
/// it fails, the bridge still works, DAD just runs.
fn link_local_without_dad(name: &str) {
    let path = format!("/proc/sys/net/ipv6/conf/{name}/accept_dad");
    if let Err(e) = std::fs::write(&path, "0") {
        tracing::debug!(path, error = %e, "could not switch DAD off on the bridge");
    }
}

pub async fn set_up(h: &Handle, index: u32, name: &str) -> Result<(), NetlinkError> {
    let msg = LinkUnspec::new_with_index(index).up().build();
    h.link()
        .set(msg)
        .execute()
        .await
        .map_err(NetlinkError::request(format!("set {name} up")))
}

/// Parameters of one veth pair: host end on `bridge_index` in the calling
/// namespace, peer created directly inside the namespace `peer_netns_fd`.
pub struct VethSpec<'a> {
    pub host_name: &'a str,
    pub peer_name: &'a str,
    pub mtu: u32,
    pub bridge_index: u32,
    pub peer_netns_fd: std::os::fd::RawFd,
    /// Chosen here rather than read back: saves a round trip per end.
    pub host_mac: [u8; 6],
    pub peer_mac: [u8; 6],
}

/// Creates the pair in one request: host end up and enslaved, peer in the
/// pod (down: the kernel cannot open a veth end before its peer exists).
/// Asks for the new link back (NLM_F_ECHO), whose IFLA_LINK is the pod
/// end's index in the pod netns: that saves looking it up there. Returns
/// that index when the kernel echoed it, or the kernel's errno on refusal
/// so the caller can tell a leftover (EEXIST) from a real failure.
pub async fn create_veth(
    h: &Handle,
    spec: &VethSpec<'_>,
) -> Result<Option<u32>, (Option<i32>, NetlinkError)> {
    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(spec.peer_name.to_string())
        .mtu(spec.mtu)
        .address(spec.peer_mac.to_vec())
        .setns_by_fd(spec.peer_netns_fd)
        .append_extra_attribute(LinkAttribute::NumTxQueues(1))
        .append_extra_attribute(LinkAttribute::NumRxQueues(1))
        .build();
    let msg = LinkVeth::new(spec.host_name, spec.peer_name)
        .mtu(spec.mtu)
        .address(spec.host_mac.to_vec())
        // One queue each way, said up front. Left unsaid, the kernel makes
        // one per CPU and then trims the live device back to one, paying a
        // synchronize_rcu_expedited per end (~0.3 ms each); same result.
        .append_extra_attribute(LinkAttribute::NumTxQueues(1))
        .append_extra_attribute(LinkAttribute::NumRxQueues(1))
        .controller(spec.bridge_index)
        .up()
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build();
    let op = || format!("create veth {} <-> {}", spec.host_name, spec.peer_name);
    let mut req = NetlinkMessage::from(RouteNetlinkMessage::NewLink(msg));
    req.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO;
    let mut handle = h.clone();
    let mut responses = handle
        .request(req)
        .map_err(|e| (errno(&e), NetlinkError::request(op())(e)))?;
    let mut peer_index = None;
    while let Some(reply) = responses.next().await {
        match reply.payload {
            NetlinkPayload::Error(err) if err.code.is_some() => {
                let e = rtnetlink::Error::NetlinkError(err);
                return Err((errno(&e), NetlinkError::request(op())(e)));
            }
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                peer_index = link.attributes.iter().find_map(|a| match a {
                    LinkAttribute::Link(i) => Some(*i),
                    _ => None,
                });
            }
            _ => {}
        }
    }
    Ok(peer_index)
}

/// Hairpin on a bridge port, found by name (index 0 makes the kernel look
/// the name up, which saves reading the link back after creating it).
pub async fn set_hairpin(h: &Handle, name: &str, on: bool) -> Result<(), NetlinkError> {
    let msg = LinkBridgePort::new(0)
        .hairpin(on)
        .append_extra_attribute(LinkAttribute::IfName(name.to_string()))
        .build();
    h.link()
        .set_port(msg)
        .execute()
        .await
        .map_err(NetlinkError::request(format!("set hairpin on {name}")))
}

/// Deletes the link `name`; a missing link is success (idempotent DEL).
/// Returns whether something was deleted.
pub async fn delete_by_name(h: &Handle, name: &str) -> Result<bool, NetlinkError> {
    let Some(info) = by_name(h, name).await? else {
        return Ok(false);
    };
    match h.link().del(info.index).execute().await {
        Ok(()) => Ok(true),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(false),
        Err(e) => Err(NetlinkError::request(format!("delete link {name}"))(e)),
    }
}
