//! The agent's config file (TOML): every command-line flag is also a key
//! here, spelled the same (`etcd-endpoints = ["http://..."]`); flags override
//! the file. This module only parses; it never applies settings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FileConfig {
    pub node_name: Option<String>,
    pub components: Option<Vec<String>>,
    pub etcd_endpoints: Option<Vec<String>>,
    pub etcd_prefix: Option<String>,
    pub iface: Option<String>,
    pub subnet_file: Option<PathBuf>,
    pub subnet_manager: Option<String>,
    pub net_conf_file: Option<PathBuf>,
    #[serde(alias = "ipMasq")]
    pub ip_masq: Option<bool>,
    pub lease_ttl: Option<u64>,
    pub resync_interval: Option<u64>,
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// An address or `off`, as the flag.
    pub healthz_addr: Option<String>,
    // kubelet
    pub node_ip: Option<std::net::IpAddr>,
    pub containerd_socket: Option<PathBuf>,
    pub containerd_namespace: Option<String>,
    pub cni_conf_dir: Option<PathBuf>,
    pub cni_bin_dir: Option<PathBuf>,
    pub pod_manifest_path: Option<PathBuf>,
    pub root_dir: Option<PathBuf>,
    pub pod_log_dir: Option<PathBuf>,
    pub netns_dir: Option<PathBuf>,
    pub netns_prefix: Option<String>,
    pub cluster_dns: Option<Vec<std::net::IpAddr>>,
    pub cluster_domain: Option<String>,
    pub cgroup_root: Option<String>,
    pub sweep_interval: Option<u64>,
    pub kubelet_port: Option<u16>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_private_key_file: Option<PathBuf>,
    pub client_ca_file: Option<PathBuf>,
    pub insecure_registry: Option<Vec<String>>,
    pub system_reserved: Option<KeyValues>,
    pub kube_reserved: Option<KeyValues>,
    pub eviction_hard: Option<KeyValues>,
    pub eviction_pressure_transition_period: Option<String>,
    // proxy and kubelet
    pub kubeconfig: Option<PathBuf>,
    pub cluster_cidr: Option<Vec<String>>,
}

/// A `name=value` list, as the flag spells it (`"cpu=100m,memory=1Gi"`,
/// `"memory.available<100Mi"`) or as a table (`{cpu = "100m"}`,
/// `{"memory.available" = "100Mi"}`, kubelet's config-file form).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum KeyValues {
    Text(String),
    Table(BTreeMap<String, String>),
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, FileError> {
        let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, FileError> {
        toml::from_str(text).map_err(|e| FileError::Parse {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_parses_and_unknown_keys_are_errors() {
        let c = FileConfig::parse(
            Path::new("a.toml"),
            r#"
node-name = "node-1"
components = ["overlay"]
etcd-endpoints = ["http://127.0.0.1:2379"]
etcd-prefix = "/x"
iface = "eth0"
subnet-file = "/run/x.env"
subnet-manager = "etcd"
ip-masq = false
lease-ttl = 60
resync-interval = 10
node-ip = "192.168.1.2"
containerd-socket = "/run/c.sock"
containerd-namespace = "k8s.io"
cni-conf-dir = "/etc/cni/net.d"
cni-bin-dir = "/opt/cni/bin"
pod-manifest-path = "/etc/kubernetes/manifests"
kubeconfig = "/etc/capstan/node.kubeconfig"
root-dir = "/var/lib/capstan/kubelet"
pod-log-dir = "/var/log/pods"
netns-dir = "/run/netns"
netns-prefix = "capstan-"
cluster-dns = ["10.96.0.10"]
cluster-domain = "cluster.local"
cgroup-root = "capstan"
sweep-interval = 30
kubelet-port = 10250
tls-cert-file = "/etc/capstan/agent.crt"
tls-private-key-file = "/etc/capstan/agent.key"
client-ca-file = "/etc/capstan/ca.crt"
system-reserved = "cpu=100m,memory=256Mi"
kube-reserved = {memory = "128Mi"}
eviction-hard = {"memory.available" = "200Mi"}
eviction-pressure-transition-period = "30s"
"#,
        )
        .unwrap();
        assert_eq!(c.node_name.as_deref(), Some("node-1"));
        assert_eq!(c.ip_masq, Some(false));
        assert_eq!(c.lease_ttl, Some(60));
        assert_eq!(c.cluster_dns.as_ref().map(Vec::len), Some(1));
        assert_eq!(c.cgroup_root.as_deref(), Some("capstan"));
        assert_eq!(c.kubelet_port, Some(10250));
        assert_eq!(
            c.system_reserved,
            Some(KeyValues::Text("cpu=100m,memory=256Mi".into()))
        );
        assert_eq!(
            c.eviction_hard,
            Some(KeyValues::Table(BTreeMap::from([(
                "memory.available".into(),
                "200Mi".into()
            )])))
        );
        assert_eq!(
            c.eviction_pressure_transition_period.as_deref(),
            Some("30s")
        );
        let c = FileConfig::parse(Path::new("a.toml"), "ipMasq = false").unwrap();
        assert_eq!(c.ip_masq, Some(false));
        let e = FileConfig::parse(Path::new("a.toml"), "bogus = 1").unwrap_err();
        assert!(
            e.to_string().contains("a.toml") && e.to_string().contains("bogus"),
            "{e}"
        );
    }
}
