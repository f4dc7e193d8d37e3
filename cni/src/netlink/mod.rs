//! Kernel network configuration over rtnetlink: the link/address/route/
//! sysctl operations the plugin needs. The socket plumbing (one socket per
//! namespace on a current-thread runtime, `ForeignSocket`) and the error
//! type come from capstan-nodenet. Must never decide *what* to configure
//! (the plugin does).

pub mod addr;
pub mod link;
pub mod route;
pub mod sysctl;

pub use capstan_nodenet::{errno, run_here, run_with_foreign, ForeignSocket, NetlinkError};
pub use link::LinkInfo;
