//! What rendering knows about the node it renders for.

use std::net::IpAddr;

use crate::model::IpFamily;

/// What rendering needs to know about this node.
#[derive(Debug, Clone)]
pub struct Context {
    pub family: IpFamily,
    pub node_name: String,
    /// The pod network: traffic to a ClusterIP from outside it is
    /// masqueraded, pod traffic to an external address is not treated as
    /// external. None: no off-cluster masquerade for ClusterIPs.
    pub cluster_cidr: Option<(IpAddr, u8)>,
}
