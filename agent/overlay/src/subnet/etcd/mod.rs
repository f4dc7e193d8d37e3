//! The etcd subnet manager: leases are etcd keys bound to etcd leases,
//! handed out by put-if-absent.

pub mod manager;
pub mod store;
pub use super::lease::DEFAULT_PREFIX;
