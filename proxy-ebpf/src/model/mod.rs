//! The proxy's view of the cluster: service ports and their endpoints,
//! derived from k8s-openapi Service and EndpointSlice objects. Pure data and
//! pure functions; it must never talk to the kernel or the API server.

pub mod endpoints;
pub mod service;
pub mod types;

pub use endpoints::{endpoints_from_slices, Endpoint};
pub use service::{service_ports, ServicePortInfo};
pub use types::{IpFamily, Protocol, ServiceKey, ServicePortName};
