//! capstan-overlay: gives a node a pod subnet (an etcd lease, or its Node's
//! podCIDR) and keeps the kernel's VXLAN/host-gw state in line with every
//! other node's lease. It never imports the kubelet or the proxy.

pub mod backend;
pub mod component;
pub mod metrics;
pub mod subnet;
pub mod subnet_file;
pub mod types;

pub use component::{run, run_kube, Options, OverlayError};
