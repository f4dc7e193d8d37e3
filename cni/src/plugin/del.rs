//! DEL: remove the pod's interface (the veth pair goes with it) and release
//! the attachment's addresses. Idempotent: a missing netns, interface or
//! reservation is success. Must never fail because something is already gone.

use std::fs::File;

use super::attachment::attachment;
use super::names::host_veth_name;
use crate::config::PluginConfig;
use crate::error::Result;
use crate::ipam::{Owner, Store};
use crate::netlink::{self, ForeignSocket, NetlinkError};
use crate::protocol::dispatch::Request;

pub fn del(req: &Request) -> Result<()> {
    let data_dir = PluginConfig::cleanup_data_dir(&req.raw, &req.header.name);
    let (container_id, ifname) = attachment(req)?;

    let pod_socket = match &req.invocation.netns {
        Some(path) => match File::open(path) {
            Ok(netns) => match ForeignSocket::open_in(&netns) {
                Ok(socket) => Some(socket),
                // Stranded in the wrong netns: stop before touching anything.
                Err(
                    e @ NetlinkError::Setup {
                        what: "setns back home",
                        ..
                    },
                ) => return Err(e.into()),
                Err(e) => {
                    tracing::info!(netns = %path.display(), error = %e, "netns not enterable; skipping pod side");
                    None
                }
            },
            Err(e) => {
                tracing::info!(netns = %path.display(), error = %e, "netns gone; skipping pod side");
                None
            }
        },
        None => None,
    };
    let host = host_veth_name(&container_id, &ifname);
    let ifname_ref = &ifname;
    netlink::run_with_foreign(pod_socket, |node, pod| async move {
        let pair_gone = match pod {
            Some(pod) => netlink::link::delete_by_name(&pod, ifname_ref).await?,
            None => false,
        };
        if !pair_gone {
            // The pod end may have been moved or its netns dropped while the
            // host end survives: remove that by its deterministic name.
            netlink::link::delete_by_name(&node, &host).await?;
        }
        Ok(())
    })?;

    let owner = Owner::new(&container_id, &ifname);
    let released = Store::new(&data_dir).lock()?.release(&owner)?;
    tracing::info!(%owner, ?released, "deleted");
    Ok(())
}
