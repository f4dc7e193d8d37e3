//! Drift detection: a second netlink socket subscribed to the kernel's link,
//! address, route and neighbour multicast groups. It only says "something
//! the overlay may own changed"; it never decides or changes anything — the
//! next reconcile pass compares and repairs only the difference.

use futures::StreamExt;
use rtnetlink::constants::{
    RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE, RTMGRP_IPV6_IFADDR, RTMGRP_IPV6_ROUTE, RTMGRP_LINK,
    RTMGRP_NEIGH,
};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::neighbour::NeighbourState;
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::sys::{AsyncSocket, SocketAddr};
use tokio::sync::mpsc;

use crate::backend::dataplane::DataplaneError;

/// Whether a notification can mean drift in what the overlay owns. ARP/NDP
/// churn of ordinary (non-permanent) neighbours on other devices is by far
/// the most frequent message and never concerns the overlay.
pub fn relevant(msg: &RouteNetlinkMessage) -> bool {
    match msg {
        RouteNetlinkMessage::NewNeighbour(n) => {
            n.header.state == NeighbourState::Permanent || n.header.family == AddressFamily::Bridge
        }
        RouteNetlinkMessage::DelNeighbour(_)
        | RouteNetlinkMessage::NewRoute(_)
        | RouteNetlinkMessage::DelRoute(_)
        | RouteNetlinkMessage::NewAddress(_)
        | RouteNetlinkMessage::DelAddress(_)
        | RouteNetlinkMessage::NewLink(_)
        | RouteNetlinkMessage::DelLink(_) => true,
        _ => false,
    }
}

/// Subscribes in the current network namespace. The receiver yields `()`
/// (coalesced: at most one pending) per burst of relevant changes, and
/// closes if the socket fails; the periodic resync then still repairs.
pub fn subscribe() -> Result<mpsc::Receiver<()>, DataplaneError> {
    let (mut conn, _handle, mut messages) =
        rtnetlink::new_connection().map_err(DataplaneError::Open)?;
    let groups = RTMGRP_LINK
        | RTMGRP_NEIGH
        | RTMGRP_IPV4_IFADDR
        | RTMGRP_IPV4_ROUTE
        | RTMGRP_IPV6_IFADDR
        | RTMGRP_IPV6_ROUTE;
    conn.socket_mut()
        .socket_mut()
        .bind(&SocketAddr::new(0, groups))
        .map_err(DataplaneError::Open)?;
    let conn = tokio::spawn(conn);
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        while let Some((msg, _)) = messages.next().await {
            let msg: NetlinkMessage<RouteNetlinkMessage> = msg;
            if let NetlinkPayload::InnerMessage(m) = &msg.payload {
                if relevant(m) && tx.try_send(()).is_err() && tx.is_closed() {
                    break;
                }
            }
        }
        conn.abort();
        tracing::warn!(
            "kernel change notifications ended; drift is repaired by the periodic resync only"
        );
    });
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_route::neighbour::NeighbourMessage;
    use rtnetlink::packet_route::route::RouteMessage;

    #[test]
    fn arp_churn_is_ignored_but_deletions_and_permanent_entries_count() {
        let mut n = NeighbourMessage::default();
        n.header.family = AddressFamily::Inet;
        n.header.state = NeighbourState::Stale;
        assert!(!relevant(&RouteNetlinkMessage::NewNeighbour(n.clone())));
        assert!(relevant(&RouteNetlinkMessage::DelNeighbour(n.clone())));
        n.header.state = NeighbourState::Permanent;
        assert!(relevant(&RouteNetlinkMessage::NewNeighbour(n.clone())));
        n.header.state = NeighbourState::Noarp;
        n.header.family = AddressFamily::Bridge;
        assert!(relevant(&RouteNetlinkMessage::NewNeighbour(n)));
        assert!(relevant(&RouteNetlinkMessage::DelRoute(
            RouteMessage::default()
        )));
    }
}
