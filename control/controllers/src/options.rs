//! Which controllers run, and the settings they take from flags. Plain
//! data: parsing `--controllers` is `clients`, running them is `run`.

use std::time::Duration;

use crate::{node_ipam, node_lifecycle};

/// Which controllers run (all by default).
#[derive(Clone, Debug)]
pub struct Options {
    pub replicas: bool,
    pub deployments: bool,
    pub daemonsets: bool,
    pub endpoints: bool,
    pub node_lifecycle: bool,
    /// The garbage collector and the namespace lifecycle.
    pub garbage_collector: bool,
    /// How long a node may stay silent before it is Ready=Unknown.
    pub node_monitor_grace: Duration,
    /// Node IPAM: node pod CIDRs carved from these cluster CIDRs.
    pub allocate_node_cidrs: Option<node_ipam::ClusterCidrs>,
    /// A `default` ServiceAccount in every namespace.
    pub service_accounts: bool,
    /// The `kube-root-ca.crt` ConfigMap in every namespace...
    pub root_ca_publisher: bool,
    /// ... holding this CA; the publisher idles without one.
    pub root_ca: Option<Pem>,
}

/// A PEM bundle; logged by size, not content (the options are logged).
#[derive(Clone, PartialEq, Eq)]
pub struct Pem(pub String);

impl std::fmt::Debug for Pem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pem({} bytes)", self.0.len())
    }
}

impl Options {
    /// Whether any controller is switched on.
    pub fn any(&self) -> bool {
        self.replicas
            || self.deployments
            || self.daemonsets
            || self.endpoints
            || self.node_lifecycle
            || self.garbage_collector
            || self.allocate_node_cidrs.is_some()
            || self.service_accounts
            || self.root_ca_publisher
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            replicas: true,
            deployments: true,
            daemonsets: true,
            endpoints: true,
            node_lifecycle: true,
            garbage_collector: true,
            node_monitor_grace: node_lifecycle::DEFAULT_GRACE,
            allocate_node_cidrs: None,
            service_accounts: true,
            root_ca_publisher: true,
            root_ca: None,
        }
    }
}
