//! The component's side of this node's lease: acquire (retrying while the
//! store is away), resume after an outage (renew, re-list, re-watch), and
//! re-acquire when the lease is lost, republishing what depends on it.

use tokio::sync::mpsc;

use crate::backend::dataplane::Dataplane;
use crate::backend::reconcile::Reconciler;
use crate::backend::vxlan;
use crate::component::error::OverlayError;
use crate::component::local::{own_ipv6, publish_local};
use crate::component::options::Options;
use crate::component::retry::{
    timed, timeout_err, transient, EtcdHealth, BACKOFF_MAX, BACKOFF_MIN, CALL_TIMEOUT,
};
use crate::subnet::config::NetworkConfig;
use crate::subnet::lease::{Lease, LeaseAttrs, StoreError, WatchItem};
use crate::subnet::manager::{AcquireError, SubnetManager};

/// After start or an outage: renew (or re-acquire) the lease, re-list every
/// lease, and watch from just after the list.
pub(super) async fn resume<M: SubnetManager, D: Dataplane>(
    mgr: &M,
    cfg: &NetworkConfig,
    attrs: &LeaseAttrs,
    lease: &mut Lease,
    rec: &mut Reconciler<D>,
    opts: &Options,
    underlay: &vxlan::Underlay,
) -> Result<mpsc::Receiver<Result<WatchItem, StoreError>>, OverlayError> {
    if !timed("renew lease", mgr.renew(lease)).await? {
        tracing::warn!(subnet = %lease.subnet, "lease expired while etcd was away; re-acquiring");
        let new = tokio::time::timeout(CALL_TIMEOUT, mgr.acquire(cfg, attrs, Some(lease.subnet)))
            .await
            .unwrap_or_else(|_| Err(AcquireError::Store(timeout_err("acquire lease"))))?;
        switch_lease(lease, new, rec, opts, cfg, underlay)?;
    } else {
        opts.metrics.lease_renewals.inc();
        tracing::info!(lease_id = lease.id.0, subnet = %lease.subnet, "lease renewed");
    }
    let list = timed("list leases", mgr.list()).await?;
    let revision = list.revision;
    rec.replace_leases(list.leases);
    let rx = timed("watch leases", mgr.watch(revision + 1)).await?;
    Ok(rx)
}

pub(super) async fn acquire<M: SubnetManager>(
    health: &mut EtcdHealth,
    mgr: &M,
    cfg: &NetworkConfig,
    attrs: &LeaseAttrs,
    previous: Option<ipnetwork::Ipv4Network>,
) -> Result<Lease, OverlayError> {
    let mut backoff = BACKOFF_MIN;
    loop {
        let r = tokio::time::timeout(CALL_TIMEOUT * 4, mgr.acquire(cfg, attrs, previous))
            .await
            .unwrap_or_else(|_| Err(AcquireError::Store(timeout_err("acquire lease"))));
        match r {
            Ok(l) => {
                health.up("acquire lease");
                return Ok(l);
            }
            Err(AcquireError::Store(e)) if transient(&e) => {
                health.down(&e);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn reacquire<M: SubnetManager, D: Dataplane>(
    health: &mut EtcdHealth,
    mgr: &M,
    cfg: &NetworkConfig,
    attrs: &LeaseAttrs,
    old: &Lease,
    opts: &Options,
    underlay: &vxlan::Underlay,
    rec: &mut Reconciler<D>,
) -> Result<Lease, OverlayError> {
    let new = acquire(health, mgr, cfg, attrs, Some(old.subnet)).await?;
    let mut lease = old.clone();
    switch_lease(&mut lease, new, rec, opts, cfg, underlay)?;
    rec.leases.insert(lease.subnet, lease.clone());
    Ok(lease)
}

fn switch_lease<D: Dataplane>(
    lease: &mut Lease,
    new: Lease,
    rec: &mut Reconciler<D>,
    opts: &Options,
    cfg: &NetworkConfig,
    underlay: &vxlan::Underlay,
) -> Result<(), OverlayError> {
    rec.local.ipv6_subnet = own_ipv6(cfg, &new);
    if new.subnet != lease.subnet {
        tracing::error!(old = %lease.subnet, new = %new.subnet, "previous subnet was taken by another node; pods on the old subnet must be recreated");
        rec.local.subnet = new.subnet;
    } else {
        tracing::info!(subnet = %new.subnet, lease_id = new.id.0, "lease re-created");
    }
    *lease = new;
    publish_local(opts, cfg, underlay, lease)
}
