//! Services: the spec (defaulting, validation), the allocation plan for
//! cluster IPs and node ports, the etcd keys those are claimed under, and the
//! Service strategy. An index: the items live in the files below.

mod alloc;
mod keys;
mod spec;
mod strategy;

pub use alloc::{allocate, Claim, Ranges};
pub use keys::{held, ip_key, port_key, IP_DIR, PORT_DIR};
pub use spec::{default_spec, validate_spec};
pub use strategy::ServiceStrategy;
