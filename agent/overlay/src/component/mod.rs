//! The overlay component: gives this node a pod subnet (a lease in etcd),
//! writes the subnet file for the CNI plugin, and keeps the kernel's
//! VXLAN/host-gw state in line with every other node's lease. It never
//! flushes kernel state it finds correct and never touches what it doesn't own.

mod error;
mod event_loop;
mod lease;
mod local;
mod options;
mod retry;
mod start;

pub use error::OverlayError;
pub use options::Options;
pub use start::{run, run_kube};
