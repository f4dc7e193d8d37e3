//! The overlay's event loop: acquire a lease, publish it, then reconcile on
//! every lease event, kernel change, resync tick and lease renewal until
//! shutdown. It keeps kernel state and lease on the way out.

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use crate::backend::dataplane::Dataplane;
use crate::backend::reconcile::Reconciler;
use crate::backend::vxlan::{self, Local};
use crate::component::error::OverlayError;
use crate::component::lease::{acquire, reacquire, resume};
use crate::component::local::{enable_forwarding, keep_masquerade, own_ipv6, publish_local};
use crate::component::options::Options;
use crate::component::retry::{timed, transient, until_ok, EtcdHealth, BACKOFF_MAX, BACKOFF_MIN};
use crate::subnet::config::{Backend, NetworkConfig};
use crate::subnet::lease::{BackendData, LeaseAttrs, StoreError, WatchItem};
use crate::subnet::manager::{AcquireError, SubnetManager};
use crate::subnet_file;
use crate::types::VtepMac;

/// How long a burst of kernel changes may settle before the repair pass:
/// a deleted device sends one message per entry it took with it.
const DRIFT_SETTLE: Duration = Duration::from_millis(50);

pub(super) async fn run_with<M: SubnetManager, D: Dataplane>(
    opts: Options,
    mgr: M,
    dp: D,
    underlay: vxlan::Underlay,
    mut kernel: Option<mpsc::Receiver<()>>,
    mut health: EtcdHealth,
    shutdown: impl Future<Output = ()>,
) -> Result<(), OverlayError> {
    let cfg: NetworkConfig =
        until_ok(&mut health, "read network config", || mgr.network_config()).await?;
    tracing::info!(network = %cfg.network, subnet_len = cfg.subnet_len, backend = cfg.backend.type_name(), "network config");

    // Keep the VTEP MAC of a device that survived a restart: peers then need no change.
    let mac = match cfg.backend {
        Backend::Vxlan { vni, .. } => {
            let existing = dp
                .read(&vxlan::device_name(vni))
                .await?
                .vxlan
                .filter(|l| l.vni == Some(vni))
                .and_then(|l| l.mac);
            Some(existing.unwrap_or_else(VtepMac::random))
        }
        Backend::HostGw => None,
    };
    let attrs = LeaseAttrs {
        public_ip: underlay.public_ip(),
        backend_type: cfg.backend.type_name().to_string(),
        backend_data: BackendData { vtep_mac: mac },
        node_name: opts.node_name.clone(),
        // Filled in per subnet by the manager when the config is dual-stack.
        ipv6_subnet: None,
        backend_v6_data: cfg
            .ipv6_network
            .and(mac)
            .map(|m| BackendData { vtep_mac: Some(m) }),
    };
    let previous = subnet_file::previous_subnet(&opts.subnet_file);
    let mut lease = acquire(&mut health, &mgr, &cfg, &attrs, previous).await?;
    tracing::info!(subnet = %lease.subnet, lease_id = lease.id.0, "subnet leased");

    enable_forwarding(cfg.ipv6_network.is_some())?;
    publish_local(&opts, &cfg, &underlay, &lease)?;
    opts.health.ready();

    let local = Local {
        underlay: underlay.clone(),
        subnet: lease.subnet,
        ipv6_subnet: own_ipv6(&cfg, &lease),
        mac,
    };
    let mut rec = Reconciler::new(dp, cfg.clone(), local);
    rec.metrics = opts.metrics.clone();

    let renew_every = (opts.lease_ttl / 3).clamp(Duration::from_secs(1), Duration::from_secs(300));
    let mut renew = tokio::time::interval_at(Instant::now() + renew_every, renew_every);
    let mut resync =
        tokio::time::interval_at(Instant::now() + opts.resync_interval, opts.resync_interval);
    let mut watch: Option<mpsc::Receiver<Result<WatchItem, StoreError>>> = None;
    // Start as "reconnect now": list, reconcile, watch.
    let mut reconnect_at: Option<Instant> = Some(Instant::now());
    let mut backoff = BACKOFF_MIN;
    let mut pass_retry_at: Option<Instant> = None;
    tokio::pin!(shutdown);

    loop {
        let reconnect_timer = async {
            match reconnect_at {
                Some(t) => sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        let pass_timer = async {
            match pass_retry_at {
                Some(t) => sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        let watching = watch.is_some();
        let next_item = async {
            match watch.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        let kernel_changed = async {
            match kernel.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        let mut need_pass = false;
        tokio::select! {
            _ = &mut shutdown => {
                tracing::info!("overlay stopping; kernel state and lease are kept for the next start");
                return Ok(());
            }
            item = next_item => match item {
                Some(Ok(item)) => {
                    if rec.absorb(item) {
                        tracing::warn!(subnet = %lease.subnet, "own lease disappeared; re-acquiring");
                        lease = reacquire(&mut health, &mgr, &cfg, &attrs, &lease, &opts, &underlay, &mut rec).await?;
                    }
                    need_pass = true;
                }
                Some(Err(e)) => {
                    health.down(&e);
                    watch = None;
                    reconnect_at = Some(Instant::now() + backoff);
                }
                None => {
                    health.down(&"watch ended");
                    watch = None;
                    reconnect_at = Some(Instant::now() + backoff);
                }
            },
            _ = renew.tick(), if watching => {
                match timed("renew lease", mgr.renew(&lease)).await {
                    Ok(true) => {
                        opts.metrics.lease_renewals.inc();
                        tracing::debug!(lease_id = lease.id.0, "lease renewed");
                    }
                    Ok(false) => {
                        tracing::warn!(subnet = %lease.subnet, "lease expired; re-acquiring");
                        lease = reacquire(&mut health, &mgr, &cfg, &attrs, &lease, &opts, &underlay, &mut rec).await?;
                        need_pass = true;
                    }
                    Err(e) => {
                        health.down(&e);
                        watch = None;
                        reconnect_at = Some(Instant::now() + backoff);
                    }
                }
            }
            _ = resync.tick() => {
                need_pass = true;
                if opts.ip_masq {
                    keep_masquerade(cfg.network.into(), lease.subnet.into()).await;
                    if let Some((subnet6, network6)) = own_ipv6(&cfg, &lease).zip(cfg.ipv6_network) {
                        keep_masquerade(network6.into(), subnet6.into()).await;
                    }
                }
            }
            _ = pass_timer => { pass_retry_at = None; need_pass = true; }
            changed = kernel_changed => match changed {
                Some(()) => {
                    let at = Instant::now() + DRIFT_SETTLE;
                    pass_retry_at = Some(pass_retry_at.map_or(at, |t| t.min(at)));
                }
                None => kernel = None,
            },
            _ = reconnect_timer => {
                match resume(&mgr, &cfg, &attrs, &mut lease, &mut rec, &opts, &underlay).await {
                    Ok(rx) => {
                        health.up("resync");
                        watch = Some(rx);
                        reconnect_at = None;
                        backoff = BACKOFF_MIN;
                        need_pass = true;
                    }
                    Err(OverlayError::Store(e)) if transient(&e) => {
                        health.down(&e);
                        reconnect_at = Some(Instant::now() + backoff);
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                    Err(OverlayError::Acquire(AcquireError::Store(e))) if transient(&e) => {
                        health.down(&e);
                        reconnect_at = Some(Instant::now() + backoff);
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        if need_pass {
            match rec.pass().await {
                Ok(r) if r.failed > 0 => {
                    pass_retry_at = Some(Instant::now() + Duration::from_secs(1))
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "reading kernel state failed; will retry");
                    pass_retry_at = Some(Instant::now() + Duration::from_secs(1));
                }
            }
        }
    }
}
