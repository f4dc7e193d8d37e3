//! The node's presence in the API: registers the Node object (addresses,
//! capacity and allocatable, node info, the agent API's port, conditions,
//! podCIDR from the overlay's subnet) and keeps it alive with a Lease in
//! `kube-node-lease` plus periodic status heartbeats, as kubelet does;
//! pressure changes are written at once, with their NoSchedule taints.
//! Never touches pods.

pub mod conditions;
pub mod info;
pub mod registration;
pub mod resources;
pub mod status;
pub mod subnet_file;
pub mod taints;
