//! The scheduling predicates the scheduler filters nodes with and kubelet
//! re-checks at admission — one implementation, so the two can never
//! disagree about a pod. Pure functions over API objects; each file follows
//! the Kubernetes helper it is named after.

pub mod host_ports;
pub mod node_affinity;
pub mod taints;

pub use host_ports::HostPort;
pub use node_affinity::NodeFields;
