//! The etcd subnet manager (flannel's `pkg/subnet/etcd`): leases are keys
//! under `<prefix>/subnets/` bound to etcd leases and handed out by
//! put-if-absent. The network config is read from `<prefix>/config`, never written.

#[cfg(test)]
pub mod fake;
pub mod lease_store;
pub mod manager;
pub mod store;

pub use lease_store::{LeaseStore, DEFAULT_PREFIX};
pub use manager::StoreSubnetManager;
pub use store::EtcdStore;
