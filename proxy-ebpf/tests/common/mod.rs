//! Lab plumbing for the proxy suites: pods as network namespaces on a
//! bridge per node (host-gw routes between nodes, IPv4 and IPv6), a test
//! server per pod that answers every line with "<pod> <client address>",
//! clients that connect from inside a namespace, and Service/EndpointSlice
//! builders. Everything lives in lab namespaces; the lab removes them.
//! An index: the pieces live in `network`, `servers` and `objects`.

#![allow(dead_code)]

mod network;
mod objects;
pub mod sctp;
mod servers;

pub use capstan_lab::wait::wait_for;
pub use network::*;
pub use objects::*;
pub use servers::*;
