//! DEL: remove the pod's interface (the veth pair goes with it) and release
//! the attachment's addresses. Idempotent: a missing netns, interface or
//! reservation is success. Must never fail because something is already gone.

use std::fs::File;

use super::{attachment, host_veth_name};
use crate::config::PluginConfig;
use crate::error::Result;
use crate::ipam::{Owner, Store};
use crate::netlink::{self, NetlinkError};
use crate::protocol::dispatch::Request;

pub fn del(req: &Request) -> Result<()> {
    let conf = PluginConfig::from_json(&req.raw, &req.header.name)?;
    let (container_id, ifname) = attachment(req)?;

    let mut pair_gone = false;
    if let Some(path) = &req.invocation.netns {
        match File::open(path) {
            Ok(netns) => {
                let name = ifname.clone();
                match netlink::run_in_netns(&netns, |h| async move {
                    netlink::link::delete_by_name(&h, &name).await
                }) {
                    Ok(deleted) => pair_gone = deleted,
                    // Not a network namespace (any more): nothing to remove there.
                    Err(NetlinkError::Setup {
                        what: "setns",
                        source,
                    }) => {
                        tracing::info!(netns = %path.display(), error = %source, "netns not enterable; skipping pod side")
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => {
                tracing::info!(netns = %path.display(), error = %e, "netns gone; skipping pod side")
            }
        }
    }
    if !pair_gone {
        // The pod end may have been moved or its netns path dropped while
        // the host end survives: remove it by its deterministic name.
        let host = host_veth_name(&container_id, &ifname);
        netlink::run_here(|h| async move { netlink::link::delete_by_name(&h, &host).await })?;
    }

    let owner = Owner::new(&container_id, &ifname);
    let released = Store::new(&conf.data_dir).lock()?.release(&owner)?;
    tracing::info!(%owner, ?released, "deleted");
    Ok(())
}
