//! The narrow `LeaseStore` trait the etcd subnet manager is written against:
//! the key-value operations on `<prefix>/subnets/...`, nothing more. The
//! etcd implementation is `store.rs`; tests use an in-memory fake.

use std::future::Future;
use std::time::Duration;

use ipnetwork::Ipv4Network;
use tokio::sync::mpsc;

use crate::subnet::config::NetworkConfig;
use crate::subnet::lease::{Lease, LeaseAttrs, LeaseId, LeaseList, StoreError, WatchItem};

/// Default etcd key prefix.
pub const DEFAULT_PREFIX: &str = "/capstan/network";

/// The key-value operations the overlay needs, and nothing more.
pub trait LeaseStore: Send + Sync + 'static {
    /// Reads and parses `<prefix>/config`.
    fn network_config(&self) -> impl Future<Output = Result<NetworkConfig, StoreError>> + Send;
    /// Lists every lease. Malformed values are skipped with a warning.
    fn list(&self) -> impl Future<Output = Result<LeaseList, StoreError>> + Send;
    /// Grants a store lease with `ttl`.
    fn grant(&self, ttl: Duration) -> impl Future<Output = Result<LeaseId, StoreError>> + Send;
    /// Creates the subnet key bound to `id` only if it does not exist.
    /// `Ok(None)` means somebody else holds it.
    fn create(
        &self,
        subnet: Ipv4Network,
        attrs: &LeaseAttrs,
        id: LeaseId,
    ) -> impl Future<Output = Result<Option<Lease>, StoreError>> + Send;
    /// Rewrites the attributes of `lease` if nobody changed it since it was read.
    fn update(
        &self,
        lease: &Lease,
        attrs: &LeaseAttrs,
    ) -> impl Future<Output = Result<Option<Lease>, StoreError>> + Send;
    /// Revokes `id` (and so deletes every key bound to it).
    fn revoke(&self, id: LeaseId) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Renews `id` once; `Ok(None)` means the lease no longer exists.
    fn keep_alive(
        &self,
        id: LeaseId,
    ) -> impl Future<Output = Result<Option<Duration>, StoreError>> + Send;
    /// Watches the subnet prefix from `revision` (inclusive). The stream ends
    /// (or yields an error) when the store goes away; the caller re-watches.
    fn watch(
        &self,
        revision: i64,
    ) -> impl Future<Output = Result<mpsc::Receiver<Result<WatchItem, StoreError>>, StoreError>> + Send;
}
