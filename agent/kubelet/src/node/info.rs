//! What registration says about this node: name, address, runtime, the
//! agent API's port, the overlay's subnet file and the resources. Data
//! only; never reads the machine or the API.

use std::net::IpAddr;

use crate::node::resources::NodeResources;

/// This node as the kubelet registers it.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub name: String,
    pub ip: Option<IpAddr>,
    pub runtime_version: String,
    /// The agent API's port, published as `daemonEndpoints.kubeletEndpoint`.
    pub kubelet_port: u16,
    /// The overlay's subnet file, when the overlay runs beside the kubelet.
    pub subnet_file: Option<std::path::PathBuf>,
    /// Capacity and allocatable (after reservations).
    pub resources: NodeResources,
}
