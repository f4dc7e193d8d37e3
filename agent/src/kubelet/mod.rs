//! The kubelet component: runs the pods a pod source assigns to this node
//! on containerd, with CNI networking. `manager` keeps one `pod_worker` per
//! pod; workers talk to containerd only through `runtime::ContainerRuntime`.
//! Never writes anything outside its flags' directories and its cgroup root.

pub mod admission;
pub mod api;
pub mod assemble;
pub mod backoff;
pub mod cni;
pub mod command;
pub mod env;
pub mod error;
pub mod events;
pub mod eviction;
pub mod gc;
pub mod hooks;
pub mod ids;
pub mod image_ref;
pub mod log_access;
pub mod logs;
pub mod manager;
pub mod netns;
pub mod pod_worker;
pub mod probes;
pub mod runtime;
pub mod runtime_health;
pub mod sandbox;
pub mod source;
pub mod spec;
pub mod status;
pub mod volumes;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use crate::kubelet::runtime::containerd::Containerd;
use crate::kubelet::source::ObjectStore;

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
    pub eviction: eviction::Settings,
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

/// What every pod worker shares: the one runtime client, CNI, objects.
pub struct Shared<R> {
    pub runtime: Arc<R>,
    pub cni: cni::Cni,
    pub objects: ObjectStore,
    pub opts: Arc<Options>,
    pub owner: String,
    pub host_ip: Option<IpAddr>,
    /// Present when an API source runs: status patches, final deletes.
    pub api: Option<api::PodApi>,
}

impl<R> Shared<R> {
    /// `<root>/pod-status/<namespace>_<name>.json`: the pod's computed
    /// status, for static pods (and tests, and `capstan-lab`).
    pub fn status_path(&self, pod: &Pod) -> PathBuf {
        status_path(
            &self.opts.root_dir,
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            pod.metadata.name.as_deref().unwrap_or(""),
        )
    }
}

pub fn status_path(root: &std::path::Path, namespace: &str, name: &str) -> PathBuf {
    root.join("pod-status")
        .join(format!("{namespace}_{name}.json"))
}

/// The node's address: the flag, else the first global IPv4 address.
fn detect_host_ip() -> Option<IpAddr> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    for a in addrs {
        if let Some(sin) = a.address.as_ref().and_then(|s| s.as_sockaddr_in()) {
            let ip = sin.ip();
            if !ip.is_loopback() && !ip.is_link_local() {
                return Some(IpAddr::V4(ip));
            }
        }
    }
    None
}

/// Runs the kubelet until `shutdown` resolves. Pods keep running after.
pub async fn run(
    opts: Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow_free::Result<()> {
    let log_driver = std::env::current_exe().map_err(|e| error::Error::Io {
        op: "find own executable (log driver)",
        path: PathBuf::new(),
        source: e,
    })?;
    let runtime = Arc::new(
        Containerd::connect(
            &opts.containerd_socket,
            &opts.containerd_namespace,
            log_driver,
            opts.insecure_registries.clone(),
        )
        .await?,
    );
    for d in [&opts.root_dir, &opts.pod_log_dir, &opts.netns_dir] {
        std::fs::create_dir_all(d).map_err(error::Error::io("create directory", d))?;
    }
    // kubelet's imagefs is where the runtime keeps layers; without an
    // answer, the root dir's filesystem stands in (one disk).
    let image_fs = match runtime.image_fs().await {
        Some(p) if p.exists() => p,
        _ => opts.root_dir.clone(),
    };
    tracing::info!(imagefs = %image_fs.display(), nodefs = %opts.root_dir.display(), "filesystems for eviction");
    let owner = ids::owner_token(&opts.node_name, &opts.root_dir.display().to_string());
    let host_ip = opts.node_ip.or_else(detect_host_ip);
    // Bound before anything runs, so a taken port or a bad certificate
    // stops the agent at once.
    let server = if opts.kubelet_port != 0 {
        Some(crate::api::bind(api_options(&opts, host_ip)).await?)
    } else {
        None
    };
    let objects = ObjectStore::default();
    let client = match &opts.kubeconfig {
        Some(path) => Some(api_client(path).await?),
        None => None,
    };
    let node_resources = opts
        .eviction
        .node_resources(crate::node::resources::machine_capacity(&opts.root_dir));
    let (pressure_tx, pressure_rx) =
        tokio::sync::watch::channel(crate::node::conditions::Pressure::default());
    let (evict_tx, evict_rx) = tokio::sync::mpsc::channel(4);
    let (runtime_tx, runtime_rx) = tokio::sync::watch::channel(None);
    let shared = Arc::new(Shared {
        runtime,
        cni: cni::Cni {
            conf_dir: opts.cni_conf_dir.clone(),
            bin_dir: opts.cni_bin_dir.clone(),
        },
        objects: objects.clone(),
        owner,
        host_ip,
        opts: Arc::new(opts.clone()),
        api: client.clone().map(|client| api::PodApi {
            events: events::Recorder::start(client.clone()),
            client,
        }),
    });
    let mut tasks = Vec::new();
    let mut inputs = Vec::new();
    let (node_tx, node_rx) =
        tokio::sync::watch::channel(source::node::initial(&opts.node_name, client.is_none()));
    let admission_inputs = admission::Inputs {
        allocatable: admission::fit::Allocatable {
            cpu_millis: node_resources.allocatable.cpu_millis.unwrap_or(i64::MAX),
            memory: node_resources.allocatable.memory.unwrap_or(i64::MAX),
            ephemeral_storage: node_resources
                .allocatable
                .ephemeral_storage
                .unwrap_or(i64::MAX),
            pods: crate::node::resources::MAX_PODS,
        },
        node: node_rx,
        pressure: pressure_rx.clone(),
    };
    if let Some(dir) = &opts.pod_manifest_path {
        let (tx, rx) = tokio::sync::watch::channel(None);
        inputs.push(rx);
        tasks.push(tokio::spawn(source::static_dir::run(
            dir.clone(),
            opts.node_name.clone(),
            objects,
            tx,
            opts.manifest_poll,
        )));
    }
    if let Some(client) = client {
        let (tx, rx) = tokio::sync::watch::channel(None);
        inputs.push(rx);
        tasks.push(tokio::spawn(source::api::run(
            client.clone(),
            opts.node_name.clone(),
            tx,
        )));
        tasks.push(tokio::spawn(source::node::run(
            client.clone(),
            opts.node_name.clone(),
            node_tx,
        )));
        tasks.push(tokio::spawn(crate::node::run(
            client,
            crate::node::NodeInfo {
                name: opts.node_name.clone(),
                ip: host_ip,
                runtime_version: "containerd".into(),
                kubelet_port: opts.kubelet_port,
                subnet_file: opts.overlay_subnet_file.clone(),
                resources: node_resources,
            },
            crate::node::Signals {
                pressure: pressure_rx,
                runtime: runtime_rx,
            },
        )));
    }
    let (tx, rx) = tokio::sync::watch::channel(None);
    if inputs.is_empty() {
        // No source at all: an empty, complete view (the sweep may run).
        let _ = tx.send(Some(Arc::new(source::Snapshot::default())));
        tasks.push(tokio::spawn(async move {
            let _keep = tx;
            std::future::pending::<()>().await
        }));
    } else {
        tasks.push(tokio::spawn(source::merge::run(inputs, tx)));
    }
    if let Some(server) = server {
        let containers = Arc::new(log_access::RuntimeContainers {
            runtime: shared.runtime.clone(),
            owner: shared.owner.clone(),
        });
        tasks.push(tokio::spawn(
            server.run(containers, std::future::pending::<()>()),
        ));
    }
    tasks.push(tokio::spawn(runtime_health::run(
        shared.runtime.clone(),
        runtime_tx,
    )));
    tasks.push(tokio::spawn(eviction::run(
        eviction::Context {
            settings: opts.eviction.clone(),
            resources: node_resources,
            cgroup_root: opts.cgroup_root.clone(),
            nodefs: opts.root_dir.clone(),
            imagefs: image_fs,
            pod_log_dir: opts.pod_log_dir.clone(),
            node_name: opts.node_name.clone(),
            events: shared.api.as_ref().map(|a| a.events.clone()),
            owner: shared.owner.clone(),
        },
        shared.runtime.clone(),
        rx.clone(),
        evict_tx,
        pressure_tx,
    )));
    tracing::info!(node = %opts.node_name, host_ip = ?host_ip, "kubelet started");
    manager::run(shared, rx, evict_rx, admission_inputs, shutdown).await;
    for t in tasks {
        t.abort();
    }
    Ok(())
}

/// The agent API's settings from the kubelet's: the node's address (all
/// addresses when unknown), the serving certificate's names.
fn api_options(opts: &Options, host_ip: Option<IpAddr>) -> crate::api::Options {
    let bind_ip = host_ip.unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let serving = match (&opts.tls_cert_file, &opts.tls_private_key_file) {
        (Some(cert), Some(key)) => crate::api::tls::Serving::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        _ => {
            let mut names = vec![opts.node_name.clone()];
            names.extend(host_ip.map(|ip| ip.to_string()));
            crate::api::tls::Serving::SelfSigned {
                dir: opts.root_dir.join("pki"),
                names,
            }
        }
    };
    crate::api::Options {
        addr: std::net::SocketAddr::new(bind_ip, opts.kubelet_port),
        serving,
        client_ca: opts.client_ca_file.clone(),
        root_dir: opts.root_dir.clone(),
        pod_log_dir: opts.pod_log_dir.clone(),
    }
}

async fn api_client(path: &std::path::Path) -> anyhow_free::Result<kube::Client> {
    capstan_proxy::component::client(Some(path))
        .await
        .map_err(|e| error::Error::Config {
            pod: String::new(),
            message: e.to_string(),
        })
}

/// The kubelet's own result type (no anyhow in the library).
pub mod anyhow_free {
    pub type Result<T> = std::result::Result<T, super::error::Error>;
}
