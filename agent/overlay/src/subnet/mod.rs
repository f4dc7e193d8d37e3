//! Where subnets come from (flannel's `pkg/subnet`): the network config,
//! the lease schema, the `SubnetManager` trait and its etcd and kube
//! implementations. Nothing here touches the kernel or imports `backend`.

pub mod arith;
pub mod config;
pub mod config_keys;
pub mod etcd;
pub mod kube;
pub mod lease;
pub mod manager;

pub use config::{Backend, ConfigError, NetworkConfig};
pub use lease::{
    BackendData, Lease, LeaseAttrs, LeaseEvent, LeaseId, LeaseList, StoreError, WatchItem,
};
pub use manager::{AcquireError, SubnetManager};
