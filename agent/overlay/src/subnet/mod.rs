//! Where subnets come from (flannel's `pkg/subnet`): the network config,
//! the lease schema, the `SubnetManager` trait and its etcd and kube
//! implementations. Nothing here touches the kernel.

pub mod arith;
pub mod config;
pub mod etcd;
pub mod kube;
pub mod lease;
