//! What the overlay is started with: everything it needs from flags or the
//! config file. Plain data; parsing flags is the agent binary's job.

use std::path::PathBuf;
use std::time::Duration;

use crate::metrics;

/// Everything the overlay needs to know from flags or the config file.
#[derive(Clone, Debug)]
pub struct Options {
    pub node_name: String,
    pub etcd_endpoints: Vec<String>,
    pub etcd_prefix: String,
    /// Underlay interface name or address; `None` = the default route's.
    pub iface: Option<String>,
    pub subnet_file: PathBuf,
    pub ip_masq: bool,
    pub lease_ttl: Duration,
    /// How often the kernel is re-read even without lease events.
    pub resync_interval: Duration,
    /// Where the overlay counts what it does (registered by the caller).
    pub metrics: metrics::Metrics,
    /// Turns ready once this node's subnet is leased and its subnet file
    /// written (the agent's `/readyz`).
    pub health: capstan_serve::health::Probe,
}
