//! The kubelet's settings as the agent's flags and config file give them,
//! and their defaults. Plain data; never reads anything itself.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::eviction::settings::Settings as EvictionSettings;

#[derive(Clone, Debug)]
pub struct Options {
    pub node_name: String,
    pub node_ip: Option<IpAddr>,
    pub containerd_socket: PathBuf,
    pub containerd_namespace: String,
    pub cni_conf_dir: PathBuf,
    pub cni_bin_dir: PathBuf,
    pub pod_manifest_path: Option<PathBuf>,
    /// API server credentials; with them pods bound to this node run too
    /// and the node registers itself.
    pub kubeconfig: Option<PathBuf>,
    pub root_dir: PathBuf,
    pub pod_log_dir: PathBuf,
    pub netns_dir: PathBuf,
    /// Prefix of the namespace files this kubelet makes in `netns_dir`
    /// (the directory may be shared, e.g. /run/netns).
    pub netns_prefix: String,
    pub cluster_dns: Vec<IpAddr>,
    pub cluster_domain: String,
    pub cgroup_root: String,
    pub sweep_interval: Duration,
    pub manifest_poll: Duration,
    /// The agent API's port (HTTPS, on the node's address); 0: not served.
    pub kubelet_port: u16,
    /// Serving certificate and key; without them a self-signed pair is
    /// made once under `<root>/pki`.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_private_key_file: Option<PathBuf>,
    /// CA of the client certificates the agent API accepts.
    pub client_ca_file: Option<PathBuf>,
    /// The overlay's subnet file when the overlay runs in this agent: its
    /// subnet becomes the Node's podCIDR, and it existing means the
    /// network is up.
    pub overlay_subnet_file: Option<PathBuf>,
    /// Registries (`host:port`) pulled from over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// Reservations, hard eviction thresholds, pressure transition period.
    pub eviction: EvictionSettings,
}

pub const DEFAULT_ROOT_DIR: &str = "/var/lib/capstan/kubelet";
pub const DEFAULT_CONTAINERD_SOCKET: &str = "/run/containerd/containerd.sock";
pub const DEFAULT_CONTAINERD_NAMESPACE: &str = "k8s.io";
pub const DEFAULT_CNI_CONF_DIR: &str = "/etc/cni/net.d";
pub const DEFAULT_CNI_BIN_DIR: &str = "/opt/cni/bin";
pub const DEFAULT_POD_LOG_DIR: &str = "/var/log/pods";
pub const DEFAULT_NETNS_DIR: &str = "/run/netns";
pub const DEFAULT_NETNS_PREFIX: &str = "capstan-";
pub const DEFAULT_CGROUP_ROOT: &str = "capstan";
