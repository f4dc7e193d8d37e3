//! The kube subnet manager (flannel's `--kube-subnet-mgr`): for clusters
//! whose etcd the agent cannot reach. A node's subnet is its Node's
//! `spec.podCIDR` (assigned by the control plane, never by this module);
//! the lease attributes peers need (public IP, backend, VTEP MAC) are
//! published as annotations on the agent's own Node, and peers are every
//! Node that carries both. The network config comes from a local file.
//!
//! Dual stack (net-conf with `IPv6Network`): the node's IPv6 subnet is the
//! IPv6 entry of its `spec.podCIDRs`, and its IPv6 VTEP is published as
//! `capstan.io/backend-v6-data` (flannel: `backend-v6-data`). flannel also
//! publishes `public-ipv6`, the IPv6 underlay address its separate
//! `flannel-v6.<VNI>` device tunnels to. Capstan's underlay is IPv4 and IPv6
//! rides the same VXLAN device as IPv4 (see `backend/vxlan.rs`, as in etcd mode), so
//! the outer destination of a peer's IPv6 traffic is its `public-ip` and
//! there is no IPv6 public address to publish.

pub mod annotations;
#[cfg(test)]
mod fixtures;
mod lease;
pub mod net_conf;
mod nodes;
mod watch;

pub use annotations::{
    annotations_patch, lease_from_node, node_subnet, node_subnet_v6, ANN_BACKEND_DATA,
    ANN_BACKEND_TYPE, ANN_BACKEND_V6_DATA, ANN_PUBLIC_IP,
};
pub use nodes::{KubeSubnetManager, DEFAULT_NET_CONF};
