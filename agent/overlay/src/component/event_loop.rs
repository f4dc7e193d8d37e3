//! The overlay component: gives this node a pod subnet (a lease in etcd),
//! writes the subnet file for the CNI plugin, and keeps the kernel's
//! VXLAN/host-gw state in line with every other node's lease. It never
//! flushes kernel state it finds correct and never touches what it doesn't own.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use crate::backend::dataplane::{Dataplane, DataplaneError};
use crate::backend::reconcile::Reconciler;
use crate::backend::vxlan::{self, Local};
use crate::backend::{kernel_events, masquerade, netlink};
use crate::metrics;
use crate::subnet::config::{Backend, NetworkConfig};
use crate::subnet::etcd::StoreSubnetManager;
use crate::subnet::lease::{BackendData, Lease, LeaseAttrs, StoreError, WatchItem};
use crate::subnet::manager::{AcquireError, SubnetManager};
use crate::subnet::{etcd, kube};
use crate::subnet_file;
use crate::types::VtepMac;

/// Everything the overlay needs to know from flags or the config file.
#[derive(Clone, Debug)]
pub struct Options {
    pub node_name: String,
    pub etcd_endpoints: Vec<String>,
    pub etcd_prefix: String,
    /// Underlay interface name or address; `None` = the default route's.
    pub iface: Option<String>,
    pub subnet_file: PathBuf,
    pub ip_masq: bool,
    pub lease_ttl: Duration,
    /// How often the kernel is re-read even without lease events.
    pub resync_interval: Duration,
    /// Where the overlay counts what it does (registered by the caller).
    pub metrics: metrics::Metrics,
}

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("underlay interface: {0}")]
    Underlay(#[source] DataplaneError),
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Acquire(#[from] AcquireError),
    #[error(transparent)]
    SubnetFile(#[from] subnet_file::WriteError),
    #[error(transparent)]
    Masquerade(#[from] masquerade::MasqError),
    #[error("enable forwarding ({path}): {source}")]
    Forwarding {
        path: &'static str,
        #[source]
        source: std::io::Error,
    },
}

const CALL_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(3);

fn transient(e: &StoreError) -> bool {
    matches!(e, StoreError::Unavailable { .. })
}

fn timeout_err(op: &'static str) -> StoreError {
    StoreError::Unavailable {
        op,
        source: "timed out".into(),
    }
}

async fn timed<T>(
    op: &'static str,
    f: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(CALL_TIMEOUT, f)
        .await
        .unwrap_or_else(|_| Err(timeout_err(op)))
}

/// Logs the subnet store's reachability (etcd, or the API server in kube
/// mode) once per change of state, never per retry.
struct EtcdHealth {
    up: bool,
    errors: prometheus_client::metrics::counter::Counter,
}

impl EtcdHealth {
    fn new(m: &metrics::Metrics) -> Self {
        EtcdHealth {
            up: true,
            errors: m.store_errors.clone(),
        }
    }

    fn down(&mut self, e: &dyn std::fmt::Display) {
        self.errors.inc();
        if self.up {
            tracing::warn!(error = %e, "subnet store unreachable; dataplane keeps its current state; retrying with backoff");
            self.up = false;
        }
    }
    fn up(&mut self, what: &str) {
        if !self.up {
            tracing::info!(what, "subnet store reachable again");
            self.up = true;
        }
    }
}

/// Retries `f` while it fails transiently, with capped exponential backoff.
async fn until_ok<T, F, Fut>(
    health: &mut EtcdHealth,
    op: &'static str,
    mut f: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut backoff = BACKOFF_MIN;
    loop {
        match timed(op, f()).await {
            Ok(v) => {
                health.up(op);
                return Ok(v);
            }
            Err(e) if transient(&e) => {
                health.down(&e);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            Err(e) => return Err(e),
        }
    }
}

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

/// How long a burst of kernel changes may settle before the repair pass:
/// a deleted device sends one message per entry it took with it.
const DRIFT_SETTLE: Duration = Duration::from_millis(50);

async fn run_with<M: SubnetManager, D: Dataplane>(
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

/// After start or an outage: renew (or re-acquire) the lease, re-list every
/// lease, and watch from just after the list.
async fn resume<M: SubnetManager, D: Dataplane>(
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

async fn acquire<M: SubnetManager>(
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
async fn reacquire<M: SubnetManager, D: Dataplane>(
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

/// This node's IPv6 subnet, when the config is dual-stack and the lease
/// (or, in kube mode, the Node's second podCIDR) has one inside it.
fn own_ipv6(cfg: &NetworkConfig, lease: &Lease) -> Option<ipnetwork::Ipv6Network> {
    let n6 = cfg.ipv6_network?;
    lease
        .attrs
        .ipv6_subnet
        .filter(|s| n6.contains(s.network()) && s.prefix() >= n6.prefix())
}

/// Subnet file and masquerade: the node-local outputs of the lease.
fn publish_local(
    opts: &Options,
    cfg: &NetworkConfig,
    underlay: &vxlan::Underlay,
    lease: &Lease,
) -> Result<(), OverlayError> {
    subnet_file::SubnetFile {
        network: cfg.network,
        subnet: lease.subnet,
        mtu: vxlan::pod_mtu(cfg, underlay),
        ip_masq: opts.ip_masq,
        ipv6_network: own_ipv6(cfg, lease).and(cfg.ipv6_network),
        ipv6_subnet: own_ipv6(cfg, lease),
    }
    .write(&opts.subnet_file)?;
    let v6 = own_ipv6(cfg, lease).zip(cfg.ipv6_network);
    if opts.ip_masq {
        if masquerade::ensure(cfg.network.into(), lease.subnet.into())? {
            tracing::info!(
                table = masquerade::TABLE,
                family = "ip",
                "masquerade rules installed"
            );
        }
        match v6 {
            Some((subnet6, network6)) => {
                if masquerade::ensure(network6.into(), subnet6.into())? {
                    tracing::info!(
                        table = masquerade::TABLE,
                        family = "ip6",
                        "masquerade rules installed"
                    );
                }
            }
            None => masquerade::remove("ip6")?,
        }
    } else {
        masquerade::remove("ip")?;
        masquerade::remove("ip6")?;
    }
    Ok(())
}

/// Re-installs the masquerade table if something removed or changed it.
async fn keep_masquerade(network: ipnetwork::IpNetwork, subnet: ipnetwork::IpNetwork) {
    match tokio::task::spawn_blocking(move || masquerade::ensure(network, subnet)).await {
        Ok(Ok(true)) => tracing::warn!(
            table = masquerade::TABLE,
            "masquerade rules were missing or changed; restored"
        ),
        Ok(Ok(false)) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "masquerade rules could not be restored; will retry")
        }
        Err(e) => tracing::warn!(error = %e, "masquerade check panicked"),
    }
}

fn enable_forwarding(ipv6: bool) -> Result<(), OverlayError> {
    const V4: &str = "/proc/sys/net/ipv4/ip_forward";
    const V6: &str = "/proc/sys/net/ipv6/conf/all/forwarding";
    let paths: &[&'static str] = if ipv6 { &[V4, V6] } else { &[V4] };
    for &path in paths {
        let on = std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1");
        if !on {
            std::fs::write(path, "1")
                .map_err(|source| OverlayError::Forwarding { path, source })?;
            tracing::info!(path, "enabled forwarding");
        }
    }
    Ok(())
}
