//! The overlay's entry points, `run` (etcd subnet manager) and `run_kube`
//! (Node podCIDRs): open the dataplane and the subnet manager, then hand
//! both to the event loop. What the agent binary calls; nothing else.

use std::future::Future;
use std::path::PathBuf;

use tokio::sync::mpsc;

use crate::backend::vxlan;
use crate::backend::{kernel_events, netlink};
use crate::component::error::OverlayError;
use crate::component::event_loop::run_with;
use crate::component::options::Options;
use crate::component::retry::{until_ok, EtcdHealth};
use crate::subnet::etcd::StoreSubnetManager;
use crate::subnet::{etcd, kube};

async fn open_dataplane(
    opts: &Options,
) -> Result<(netlink::NetlinkDataplane, vxlan::Underlay), OverlayError> {
    let dp = netlink::NetlinkDataplane::open()?;
    let underlay = dp
        .find_underlay(opts.iface.as_deref())
        .await
        .map_err(OverlayError::Underlay)?;
    tracing::info!(iface = %underlay.name, public_ip = %underlay.public_ip(), mtu = underlay.mtu, "underlay");
    Ok((dp, underlay))
}

/// Runs the overlay with the kube subnet manager (subnets from
/// `node.spec.podCIDR`, network config from `net_conf`) until `shutdown`.
pub async fn run_kube(
    opts: Options,
    client: ::kube::Client,
    net_conf: PathBuf,
    shutdown: impl Future<Output = ()>,
) -> Result<(), OverlayError> {
    // A bad file stops the overlay here, before anything on the node is
    // read or changed; the event loop reads it again (and warns about
    // ignored keys) through the manager.
    kube::net_conf::load(&net_conf).map_err(crate::subnet::lease::StoreError::from)?;
    let (dp, underlay) = open_dataplane(&opts).await?;
    let mgr = kube::KubeSubnetManager::new(client, opts.node_name.clone(), net_conf);
    let kernel = kernel_changes();
    let health = EtcdHealth::new(&opts.metrics);
    run_with(opts, mgr, dp, underlay, kernel, health, shutdown).await
}

/// Runs the overlay with the etcd subnet manager until `shutdown` resolves.
pub async fn run(opts: Options, shutdown: impl Future<Output = ()>) -> Result<(), OverlayError> {
    let (dp, underlay) = open_dataplane(&opts).await?;
    let mut health = EtcdHealth::new(&opts.metrics);
    let store = {
        let eps = opts.etcd_endpoints.clone();
        let prefix = opts.etcd_prefix.clone();
        until_ok(&mut health, "connect", || {
            etcd::store::EtcdStore::connect(&eps, &prefix)
        })
        .await?
    };
    let mgr = StoreSubnetManager {
        store,
        ttl: opts.lease_ttl,
    };
    let kernel = kernel_changes();
    run_with(opts, mgr, dp, underlay, kernel, health, shutdown).await
}

/// Kernel change notifications, or `None` (drift then waits for the
/// periodic resync) when the subscription cannot be made.
fn kernel_changes() -> Option<mpsc::Receiver<()>> {
    match kernel_events::subscribe() {
        Ok(rx) => Some(rx),
        Err(e) => {
            tracing::warn!(error = %e, "no kernel change notifications; drift is repaired by the periodic resync only");
            None
        }
    }
}
