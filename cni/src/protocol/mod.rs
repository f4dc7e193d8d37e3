//! The CNI wire protocol (spec 0.3.x to 1.1.0): environment, network-config
//! header, result types per version, error JSON and command dispatch. It knows
//! nothing about bridges or addresses and must never touch the kernel.

pub mod dispatch;
pub mod env;
pub mod error;
pub mod netconf;
pub mod result;
pub mod serde_str;
pub mod version;

pub use dispatch::{dispatch, Outcome, Plugin};
pub use env::{Command, ContainerId, IfName, Invocation};
pub use error::{CniError, ErrorCode};
pub use netconf::{Attachment, NetConfHeader};
pub use result::{CniResult, Dns, Interface, IpConfig, Route};
pub use version::CniVersion;
