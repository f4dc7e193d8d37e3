//! Node networking plumbing: the netlink error and idempotence rules,
//! netlink sockets in this or another namespace, and entering network
//! namespaces. Owns how to talk to the kernel; must never decide what to
//! configure (the CNI plugin, overlay and proxy do).

pub mod error;
pub mod netns;
pub mod socket;

pub use error::{errno, exists_ok, gone_ok, NetlinkError};
pub use netns::{NetnsGuard, Place, Setns};
pub use socket::{run_here, run_with_foreign, ForeignSocket};
