//! The netlink dataplane's socket: one rtnetlink connection in the agent's
//! own network namespace and the link lookups every read and change starts
//! from. It reads only; changes live in `apply.rs`.

use futures::TryStreamExt;
use rtnetlink::packet_route::link::LinkMessage;
use rtnetlink::Handle;

use crate::backend::dataplane::DataplaneError;
use capstan_nodenet::errno;

pub(super) const RT_TABLE_MAIN: u8 = 254;

/// The real `Dataplane`: rtnetlink messages on one netlink socket.
pub struct NetlinkDataplane {
    pub(super) handle: Handle,
}

impl NetlinkDataplane {
    /// Opens a netlink socket in the current network namespace; the
    /// connection task runs on the current tokio runtime.
    pub fn open() -> Result<Self, DataplaneError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(DataplaneError::Open)?;
        tokio::spawn(conn);
        Ok(NetlinkDataplane { handle })
    }

    pub(super) async fn links(&self) -> Result<Vec<LinkMessage>, DataplaneError> {
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

    pub(super) async fn link_by_name(
        &self,
        name: &str,
    ) -> Result<Option<LinkMessage>, DataplaneError> {
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

    pub(super) async fn index_of(&self, name: &str) -> Result<u32, DataplaneError> {
        self.link_by_name(name)
            .await?
            .map(|l| l.header.index)
            .ok_or_else(|| DataplaneError::NoSuchLink {
                name: name.to_string(),
            })
    }
}
