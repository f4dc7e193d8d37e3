//! Starts the kubelet: the runtime client, the pod sources, node
//! registration, the agent API server, eviction and the pod manager, and
//! stops them when told. Wiring only; each part owns its own logic.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::admission::{admit as admission, fit};
use crate::error;
use crate::events::record::Recorder;
use crate::eviction::manager as eviction;
use crate::ids;
use crate::logs::access::RuntimeContainers;
use crate::manager;
use crate::node::info::NodeInfo;
use crate::node::registration::{self, Signals};
use crate::options::Options;
use crate::runtime::containerd::Containerd;
use crate::runtime::health as runtime_health;
use crate::sandbox::cni;
use crate::shared::Shared;
use crate::source;
use crate::source::snapshot::ObjectStore;
use crate::status::api::PodApi;

/// Why the kubelet could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Kubelet(#[from] error::Error),
    #[error("agent API: {0}")]
    Server(#[from] crate::server::options::ServerError),
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
) -> Result<(), RunError> {
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
        Some(crate::server::serve::bind(api_options(&opts, host_ip)).await?)
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
    let cni = cni::Cni {
        conf_dir: opts.cni_conf_dir.clone(),
        bin_dir: opts.cni_bin_dir.clone(),
    };
    let (runtime_tx, runtime_rx) = tokio::sync::watch::channel(runtime_health::initial(&cni));
    let shared = Arc::new(Shared {
        runtime,
        cni: cni.clone(),
        objects: objects.clone(),
        owner,
        host_ip,
        opts: Arc::new(opts.clone()),
        api: client.clone().map(|client| PodApi {
            events: Recorder::start(client.clone()),
            client,
        }),
        services: client.clone().map(source::services::ServiceStore::spawn),
    });
    let mut tasks = Vec::new();
    let mut inputs = Vec::new();
    let (node_tx, node_rx) =
        tokio::sync::watch::channel(source::node::initial(&opts.node_name, client.is_none()));
    let admission_inputs = admission::Inputs {
        allocatable: fit::Allocatable {
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
        tasks.push(tokio::spawn(registration::run(
            client,
            NodeInfo {
                name: opts.node_name.clone(),
                ip: host_ip,
                runtime_version: "containerd".into(),
                kubelet_port: opts.kubelet_port,
                subnet_file: opts.overlay_subnet_file.clone(),
                resources: node_resources,
            },
            Signals {
                pressure: pressure_rx,
                runtime: runtime_rx,
            },
        )));
    }
    let (tx, rx) = tokio::sync::watch::channel(None);
    if inputs.is_empty() {
        // No source at all: an empty, complete view (the sweep may run).
        let _ = tx.send(Some(Arc::new(source::snapshot::Snapshot::default())));
        tasks.push(tokio::spawn(async move {
            let _keep = tx;
            std::future::pending::<()>().await
        }));
    } else {
        tasks.push(tokio::spawn(source::merge::run(inputs, tx)));
    }
    if let Some(server) = server {
        let containers = Arc::new(RuntimeContainers {
            runtime: shared.runtime.clone(),
            owner: shared.owner.clone(),
        });
        tasks.push(tokio::spawn(
            server.run(containers, std::future::pending::<()>()),
        ));
    }
    tasks.push(tokio::spawn(runtime_health::run(
        shared.runtime.clone(),
        cni,
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
fn api_options(opts: &Options, host_ip: Option<IpAddr>) -> crate::server::options::Options {
    let bind_ip = host_ip.unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let serving = match (&opts.tls_cert_file, &opts.tls_private_key_file) {
        (Some(cert), Some(key)) => crate::server::tls::Serving::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        _ => {
            let mut names = vec![opts.node_name.clone()];
            names.extend(host_ip.map(|ip| ip.to_string()));
            crate::server::tls::Serving::SelfSigned {
                dir: opts.root_dir.join("pki"),
                names,
            }
        }
    };
    crate::server::options::Options {
        addr: std::net::SocketAddr::new(bind_ip, opts.kubelet_port),
        serving,
        client_ca: opts.client_ca_file.clone(),
        root_dir: opts.root_dir.clone(),
        pod_log_dir: opts.pod_log_dir.clone(),
    }
}

async fn api_client(path: &std::path::Path) -> Result<kube::Client, error::Error> {
    capstan_k8s::client(&capstan_k8s::ClientOptions::kubeconfig(Some(path)))
        .await
        .map_err(|e| error::Error::Config {
            pod: String::new(),
            message: e.to_string(),
        })
}
