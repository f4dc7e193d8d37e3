//! The `SubnetManager` trait (flannel's `subnet.Manager`): what the
//! overlay's loop needs from wherever subnets come from, and the errors of
//! acquiring one. Implementations: `etcd::StoreSubnetManager`, `kube::KubeSubnetManager`.

use std::future::Future;

use ipnetwork::Ipv4Network;
use tokio::sync::mpsc;

use crate::subnet::config::NetworkConfig;
use crate::subnet::lease::{Lease, LeaseAttrs, LeaseList, StoreError, WatchItem};

#[derive(Debug, thiserror::Error)]
pub enum AcquireError {
    #[error("network {network} has no free /{subnet_len} subnet left ({taken} leased); enlarge Network or remove stale leases")]
    Exhausted {
        network: Ipv4Network,
        subnet_len: u8,
        taken: usize,
    },
    #[error("gave up acquiring a subnet after {attempts} lost races")]
    TooManyRaces { attempts: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the reconcile loop needs from wherever subnets come from.
pub trait SubnetManager: Send + Sync + 'static {
    fn network_config(&self) -> impl Future<Output = Result<NetworkConfig, StoreError>> + Send;
    /// Gets this node a lease (its previous one when possible).
    fn acquire(
        &self,
        cfg: &NetworkConfig,
        attrs: &LeaseAttrs,
        previous: Option<Ipv4Network>,
    ) -> impl Future<Output = Result<Lease, AcquireError>> + Send;
    /// Renews `lease`; `Ok(false)` when it is gone and must be re-acquired.
    fn renew(&self, lease: &Lease) -> impl Future<Output = Result<bool, StoreError>> + Send;
    fn list(&self) -> impl Future<Output = Result<LeaseList, StoreError>> + Send;
    fn watch(
        &self,
        revision: i64,
    ) -> impl Future<Output = Result<mpsc::Receiver<Result<WatchItem, StoreError>>, StoreError>> + Send;
}
