//! `capstan-agent`: parses flags (and the config file they override) and
//! wires the node's components together. No logic of its own.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use capstan_agent::config_file::{FileConfig, KeyValues};
use capstan_kubelet as kubelet;
use capstan_kubelet::node::resources::Resources;
use capstan_overlay as overlay;
use clap::{Parser, ValueEnum};

/// The parts of the agent that can be switched on independently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Component {
    Kubelet,
    Overlay,
    Proxy,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum SubnetManagerKind {
    Etcd,
    Kube,
}

#[derive(Parser, Debug)]
#[command(name = "capstan-agent", version, about = "Capstan node agent")]
struct Cli {
    /// TOML config file; every flag is also a key there (flags win).
    #[arg(long, env = "CAPSTAN_AGENT_CONFIG")]
    config: Option<PathBuf>,

    /// Name of this node (defaults to the host name).
    #[arg(long, env = "CAPSTAN_NODE_NAME")]
    node_name: Option<String>,

    /// Components to run, comma-separated [default: overlay].
    #[arg(long, value_delimiter = ',')]
    components: Option<Vec<Component>>,

    /// etcd endpoints, comma-separated [default: http://127.0.0.1:2379].
    #[arg(long, value_delimiter = ',')]
    etcd_endpoints: Option<Vec<String>>,

    /// etcd key prefix of the overlay [default: /capstan/network].
    #[arg(long)]
    etcd_prefix: Option<String>,

    /// Underlay interface name or IPv4 address [default: default route's].
    #[arg(long)]
    iface: Option<String>,

    /// Where the subnet file for the CNI plugin goes [default: /run/capstan/subnet.env].
    #[arg(long)]
    subnet_file: Option<PathBuf>,

    /// Where the node's subnet comes from [default: etcd]; `kube` takes it
    /// from node.spec.podCIDR through the API server (--kubeconfig).
    #[arg(long, value_enum)]
    subnet_manager: Option<SubnetManagerKind>,

    /// Network config in kube mode, same JSON as the etcd key
    /// [default: /etc/capstan/net-conf.json].
    #[arg(long)]
    net_conf_file: Option<PathBuf>,

    /// Masquerade pod traffic leaving the cluster network [default: true].
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    ip_masq: Option<bool>,

    /// TTL of the subnet lease in seconds [default: 86400].
    #[arg(long)]
    lease_ttl: Option<u64>,

    /// Seconds between full kernel re-reads without lease events [default: 30].
    #[arg(long)]
    resync_interval: Option<u64>,

    /// Address for the agent's Prometheus endpoint (`GET /metrics`), e.g.
    /// 127.0.0.1:9464 [default: off].
    #[arg(long)]
    metrics_addr: Option<std::net::SocketAddr>,

    /// Address of the health endpoint (`GET /healthz`: overlay and proxy
    /// running, `GET /readyz`: subnet file written and proxy synced), or
    /// `off`; given, a port in use is an error [default: 0.0.0.0:10256
    /// with the overlay or proxy when free, else off].
    #[arg(long, value_parser = capstan_agent::healthz_addr::parse)]
    healthz_addr: Option<capstan_agent::healthz_addr::HealthzAddr>,

    /// kubelet: this node's address reported as hostIP [default: first global IPv4].
    #[arg(long)]
    node_ip: Option<std::net::IpAddr>,

    /// kubelet: containerd's gRPC socket [default: /run/containerd/containerd.sock].
    #[arg(long)]
    containerd_socket: Option<PathBuf>,

    /// kubelet: containerd namespace for images and containers [default: k8s.io].
    #[arg(long)]
    containerd_namespace: Option<String>,

    /// kubelet: CNI network configs; the lowest-sorted file is used [default: /etc/cni/net.d].
    #[arg(long)]
    cni_conf_dir: Option<PathBuf>,

    /// kubelet: CNI plugin binaries [default: /opt/cni/bin].
    #[arg(long)]
    cni_bin_dir: Option<PathBuf>,

    /// kubelet: directory of static pod manifests (YAML/JSON), watched for changes.
    #[arg(long)]
    pod_manifest_path: Option<PathBuf>,

    /// kubelet: state directory (sandboxes, pod status files) [default: /var/lib/capstan/kubelet].
    #[arg(long)]
    root_dir: Option<PathBuf>,

    /// kubelet: container logs, CRI format [default: /var/log/pods].
    #[arg(long)]
    pod_log_dir: Option<PathBuf>,

    /// kubelet: where pod namespaces are bind-mounted [default: /run/netns].
    #[arg(long)]
    netns_dir: Option<PathBuf>,

    /// kubelet: name prefix of this kubelet's namespace files [default: capstan-].
    #[arg(long)]
    netns_prefix: Option<String>,

    /// kubelet: cluster DNS server(s) written to pods' resolv.conf, comma-separated.
    #[arg(long, value_delimiter = ',')]
    cluster_dns: Option<Vec<std::net::IpAddr>>,

    /// kubelet: cluster domain [default: cluster.local].
    #[arg(long)]
    cluster_domain: Option<String>,

    /// kubelet: cgroup parent of every pod (below each v1 hierarchy) [default: capstan].
    #[arg(long)]
    cgroup_root: Option<String>,

    /// kubelet: seconds between orphan sweeps [default: 30].
    #[arg(long)]
    sweep_interval: Option<u64>,

    /// kubelet: port of the agent's HTTPS API (container logs, health) on the node's address; 0: off [default: 10250].
    #[arg(long)]
    kubelet_port: Option<u16>,

    /// kubelet: the agent API's serving certificate [default: self-signed, kept in <root-dir>/pki].
    #[arg(long)]
    tls_cert_file: Option<PathBuf>,

    /// kubelet: key of --tls-cert-file.
    #[arg(long)]
    tls_private_key_file: Option<PathBuf>,

    /// kubelet: CA whose client certificates the agent API accepts (the cluster CA).
    #[arg(long)]
    client_ca_file: Option<PathBuf>,

    /// kubelet: registries (host:port) to pull from over plain HTTP,
    /// comma-separated (containerd's `insecure` hosts; all others use HTTPS).
    #[arg(long, value_delimiter = ',')]
    insecure_registry: Option<Vec<String>>,

    /// kubelet: resources kept for the OS, taken out of allocatable
    /// (cpu=100m,memory=256Mi,ephemeral-storage=1Gi,pid=1000).
    #[arg(long)]
    system_reserved: Option<String>,

    /// kubelet: resources kept for Kubernetes daemons (same syntax).
    #[arg(long)]
    kube_reserved: Option<String>,

    /// kubelet: hard eviction thresholds; given ones replace all defaults
    /// [default: memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<15%,imagefs.inodesFree<5%].
    #[arg(long)]
    eviction_hard: Option<String>,

    /// kubelet: how long a pressure condition stays True after its
    /// threshold is no longer met [default: 5m0s].
    #[arg(long)]
    eviction_pressure_transition_period: Option<String>,

    /// proxy: kubeconfig to watch Services and EndpointSlices with [default: in-cluster or $KUBECONFIG];
    /// kubelet: with it, pods bound to this node run too and the node registers itself.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,

    /// proxy: the pod network, IPv4 and/or IPv6 CIDRs; ClusterIP traffic from outside it is masqueraded.
    #[arg(long, value_delimiter = ',')]
    cluster_cidr: Option<Vec<String>>,
}

fn main() -> ExitCode {
    // The containerd shim runs this binary as the containers' log driver.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.len() == 3 && args[1] == kubelet::logs::DRIVER_ARG {
        let code = kubelet::logs::run_driver(std::path::Path::new(&args[2]));
        return ExitCode::from(code as u8);
    }
    if args.get(1).is_some_and(|a| a == "install-cni") {
        return install_cni(&args[1..]);
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help / --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let text = e.to_string();
            let line = text.lines().next().unwrap_or("bad arguments");
            eprintln!("capstan-agent: {}", line.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    capstan_serve::logging::init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("capstan-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `capstan-agent install-cni`: the DaemonSet's init container (the image
/// has no shell to copy files with).
#[derive(Parser, Debug)]
#[command(
    name = "capstan-agent install-cni",
    about = "Install CNI plugin binaries and the network config onto the host, atomically"
)]
struct InstallCniCli {
    /// A plugin binary, or a directory whose regular files are plugins.
    #[arg(long)]
    from: PathBuf,
    /// Where the node's runtime looks for CNI plugins.
    #[arg(long, default_value = "/opt/cni/bin")]
    bin_dir: PathBuf,
    /// The CNI network config list to install.
    #[arg(long)]
    conflist: Option<PathBuf>,
    /// Where the node's runtime reads network configs.
    #[arg(long, default_value = "/etc/cni/net.d")]
    conf_dir: PathBuf,
    /// File name of the installed config.
    #[arg(long, default_value = capstan_agent::install_cni::DEFAULT_CONFLIST_NAME)]
    conflist_name: String,
}

fn install_cni(args: &[std::ffi::OsString]) -> ExitCode {
    use capstan_agent::install_cni::{install, Outcome, Request};
    let cli = match InstallCniCli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let text = e.to_string();
            let line = text.lines().next().unwrap_or("bad arguments");
            eprintln!(
                "capstan-agent install-cni: {}",
                line.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    let req = Request {
        from: cli.from,
        bin_dir: cli.bin_dir,
        conflist: cli.conflist,
        conf_dir: cli.conf_dir,
        conflist_name: cli.conflist_name,
    };
    match install(&req) {
        Ok(done) => {
            for o in done {
                match o {
                    Outcome::Installed(p) => println!("installed {}", p.display()),
                    Outcome::Unchanged(p) => println!("unchanged {}", p.display()),
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("capstan-agent install-cni: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_components(names: &[String]) -> anyhow::Result<Vec<Component>> {
    names
        .iter()
        .map(|n| {
            Component::from_str(n, true).map_err(|_| {
                anyhow::anyhow!("unknown component {n:?} in config file (kubelet, overlay, proxy)")
            })
        })
        .collect()
}

/// A reservation flag or key; errors name the flag.
fn reserved(flag: &str, cli: Option<String>, file: Option<KeyValues>) -> anyhow::Result<Resources> {
    match (cli, file) {
        (Some(t), _) | (None, Some(KeyValues::Text(t))) => Resources::parse(&t),
        (None, Some(KeyValues::Table(m))) => Resources::from_map(&m),
        (None, None) => Ok(Resources::default()),
    }
    .map_err(|e| anyhow::anyhow!("--{flag}: {e}"))
}

fn eviction_settings(
    cli: &mut Cli,
    file: &mut FileConfig,
) -> anyhow::Result<kubelet::eviction::Settings> {
    use kubelet::eviction::{parse_duration, threshold, Settings};
    let mut s = Settings {
        system_reserved: reserved(
            "system-reserved",
            cli.system_reserved.take(),
            file.system_reserved.take(),
        )?,
        kube_reserved: reserved(
            "kube-reserved",
            cli.kube_reserved.take(),
            file.kube_reserved.take(),
        )?,
        ..Default::default()
    };
    let hard = match (cli.eviction_hard.take(), file.eviction_hard.take()) {
        (Some(t), _) | (None, Some(KeyValues::Text(t))) => Some(threshold::parse_list(&t)),
        (None, Some(KeyValues::Table(m))) => Some(threshold::from_map(&m)),
        (None, None) => None,
    };
    if let Some(h) = hard {
        s.hard = h.map_err(|e| anyhow::anyhow!("--eviction-hard: {e}"))?;
    }
    if let Some(p) = cli
        .eviction_pressure_transition_period
        .take()
        .or(file.eviction_pressure_transition_period.take())
    {
        s.pressure_transition_period = parse_duration(&p)
            .map_err(|e| anyhow::anyhow!("--eviction-pressure-transition-period: {e}"))?;
    }
    Ok(s)
}

fn run(mut cli: Cli) -> anyhow::Result<()> {
    let mut file = match &cli.config {
        Some(p) => FileConfig::load(p)?,
        None => FileConfig::default(),
    };
    let eviction = eviction_settings(&mut cli, &mut file)?;
    let components = match (cli.components, &file.components) {
        (Some(c), _) => c,
        (None, Some(names)) => parse_components(names)?,
        (None, None) => vec![Component::Overlay],
    };
    let manager = match (cli.subnet_manager, file.subnet_manager.as_deref()) {
        (Some(m), _) => m,
        (None, Some(s)) => SubnetManagerKind::from_str(s, true).map_err(|_| {
            anyhow::anyhow!("unknown subnet-manager {s:?} in config file (etcd, kube)")
        })?,
        (None, None) => SubnetManagerKind::Etcd,
    };
    let net_conf_file = cli
        .net_conf_file
        .take()
        .or(file.net_conf_file.take())
        .unwrap_or_else(|| overlay::subnet::kube::DEFAULT_NET_CONF.into());
    let overlay_kube =
        components.contains(&Component::Overlay) && manager == SubnetManagerKind::Kube;
    // Kube mode reads the network config from a local file (the
    // DaemonSet's ConfigMap): a bad one stops the agent here, in one line,
    // before anything touches the node's network. The overlay reads it
    // again and warns about the keys it ignores.
    let net_conf = if overlay_kube {
        Some(overlay::subnet::kube::net_conf::load(&net_conf_file)?.0)
    } else {
        None
    };
    let health = capstan_serve::health::Health::default();
    let probe = |c: Component, name: &'static str| {
        if components.contains(&c) {
            health.probe(name)
        } else {
            capstan_serve::health::Probe::detached(name)
        }
    };
    // Asked for (flag or file): a port that cannot be bound stops the
    // agent. The default is best effort: another agent in the same network
    // namespace (tests, a second instance) may hold it.
    let (healthz_addr, healthz_asked) = match (cli.healthz_addr.take(), file.healthz_addr.take()) {
        (Some(a), _) => (a, true),
        (None, Some(text)) => (
            capstan_agent::healthz_addr::parse(&text)
                .map_err(|e| anyhow::anyhow!("healthz-addr in config file: {e}"))?,
            true,
        ),
        (None, None) => (
            capstan_agent::healthz_addr::default_for(
                components.contains(&Component::Overlay) || components.contains(&Component::Proxy),
            ),
            false,
        ),
    };
    let node_name = match cli.node_name.or(file.node_name) {
        Some(n) => n,
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .context("no --node-name and the host name is unreadable")?
            .trim()
            .to_string(),
    };
    let opts = overlay::Options {
        node_name: node_name.clone(),
        etcd_endpoints: cli
            .etcd_endpoints
            .or(file.etcd_endpoints)
            .unwrap_or_else(|| vec!["http://127.0.0.1:2379".into()]),
        etcd_prefix: cli
            .etcd_prefix
            .or(file.etcd_prefix)
            .unwrap_or_else(|| overlay::subnet::etcd::DEFAULT_PREFIX.into()),
        iface: cli.iface.or(file.iface),
        subnet_file: cli
            .subnet_file
            .or(file.subnet_file)
            .unwrap_or_else(|| overlay::subnet_file::DEFAULT_PATH.into()),
        ip_masq: cli.ip_masq.or(file.ip_masq).unwrap_or(true),
        lease_ttl: Duration::from_secs(cli.lease_ttl.or(file.lease_ttl).unwrap_or(86_400).max(5)),
        resync_interval: Duration::from_secs(
            cli.resync_interval
                .or(file.resync_interval)
                .unwrap_or(30)
                .max(1),
        ),
        metrics: overlay::metrics::Metrics::default(),
        health: probe(Component::Overlay, "overlay"),
    };
    let metrics_addr = cli.metrics_addr.or(file.metrics_addr);
    let mut registry = prometheus_client::registry::Registry::default();
    if components.contains(&Component::Overlay) {
        opts.metrics.register(&mut registry);
    }
    let proxy_metrics = capstan_proxy::metrics::Metrics::default();
    let proxy_probe = probe(Component::Proxy, "proxy");
    if components.contains(&Component::Proxy) {
        proxy_metrics.register(&mut registry);
    }
    let kubelet_opts = kubelet::Options {
        node_name: node_name.clone(),
        node_ip: cli.node_ip.or(file.node_ip),
        containerd_socket: cli
            .containerd_socket
            .or(file.containerd_socket)
            .unwrap_or_else(|| kubelet::DEFAULT_CONTAINERD_SOCKET.into()),
        containerd_namespace: cli
            .containerd_namespace
            .or(file.containerd_namespace)
            .unwrap_or_else(|| kubelet::DEFAULT_CONTAINERD_NAMESPACE.into()),
        cni_conf_dir: cli
            .cni_conf_dir
            .or(file.cni_conf_dir)
            .unwrap_or_else(|| kubelet::DEFAULT_CNI_CONF_DIR.into()),
        cni_bin_dir: cli
            .cni_bin_dir
            .or(file.cni_bin_dir)
            .unwrap_or_else(|| kubelet::DEFAULT_CNI_BIN_DIR.into()),
        pod_manifest_path: cli.pod_manifest_path.or(file.pod_manifest_path),
        kubeconfig: cli.kubeconfig.clone().or(file.kubeconfig.clone()),
        root_dir: cli
            .root_dir
            .or(file.root_dir)
            .unwrap_or_else(|| kubelet::DEFAULT_ROOT_DIR.into()),
        pod_log_dir: cli
            .pod_log_dir
            .or(file.pod_log_dir)
            .unwrap_or_else(|| kubelet::DEFAULT_POD_LOG_DIR.into()),
        netns_dir: cli
            .netns_dir
            .or(file.netns_dir)
            .unwrap_or_else(|| kubelet::DEFAULT_NETNS_DIR.into()),
        netns_prefix: cli
            .netns_prefix
            .or(file.netns_prefix)
            .unwrap_or_else(|| kubelet::DEFAULT_NETNS_PREFIX.into()),
        cluster_dns: cli.cluster_dns.or(file.cluster_dns).unwrap_or_default(),
        cluster_domain: cli
            .cluster_domain
            .or(file.cluster_domain)
            .unwrap_or_else(|| "cluster.local".into()),
        cgroup_root: cli
            .cgroup_root
            .or(file.cgroup_root)
            .unwrap_or_else(|| kubelet::DEFAULT_CGROUP_ROOT.into()),
        sweep_interval: Duration::from_secs(
            cli.sweep_interval
                .or(file.sweep_interval)
                .unwrap_or(30)
                .max(1),
        ),
        manifest_poll: Duration::from_millis(100),
        kubelet_port: cli
            .kubelet_port
            .or(file.kubelet_port)
            .unwrap_or(kubelet::server::DEFAULT_PORT),
        tls_cert_file: cli.tls_cert_file.or(file.tls_cert_file),
        tls_private_key_file: cli.tls_private_key_file.or(file.tls_private_key_file),
        client_ca_file: cli.client_ca_file.or(file.client_ca_file),
        // The overlay's subnet tells the Node its podCIDR and that the
        // network is up (etcd mode only: in kube mode the podCIDR is the
        // input, not the output).
        overlay_subnet_file: (components.contains(&Component::Overlay)
            && manager == SubnetManagerKind::Etcd)
            .then(|| opts.subnet_file.clone()),
        insecure_registries: cli
            .insecure_registry
            .or(file.insecure_registry)
            .unwrap_or_default(),
        eviction,
    };
    if kubelet_opts.tls_cert_file.is_some() != kubelet_opts.tls_private_key_file.is_some() {
        bail!("--tls-cert-file and --tls-private-key-file go together");
    }
    let mut proxy_families = vec![
        (capstan_proxy::model::IpFamily::V4, None),
        (capstan_proxy::model::IpFamily::V6, None),
    ];
    // The pod network is the overlay's Network (and IPv6Network) unless given.
    let from_net_conf = net_conf.map(|n| {
        let mut v = vec![n.network.to_string()];
        v.extend(n.ipv6_network.map(|n6| n6.to_string()));
        v
    });
    for c in cli
        .cluster_cidr
        .or(file.cluster_cidr)
        .or(from_net_conf)
        .unwrap_or_default()
    {
        let Some(cidr) = capstan_proxy::component::parse_cidr(&c) else {
            bail!("--cluster-cidr {c:?} is not a CIDR (like 10.244.0.0/16)");
        };
        let family = capstan_proxy::model::IpFamily::of(&cidr.0);
        for f in proxy_families.iter_mut().filter(|f| f.0 == family) {
            f.1 = Some(cidr);
        }
    }
    let proxy_cfg = capstan_proxy::ProxyConfig {
        node_name: node_name.clone(),
        families: proxy_families,
        place: capstan_proxy::Place::current(),
        full_resync_interval: Duration::from_secs(3600),
    };
    let kubeconfig = cli.kubeconfig.or(file.kubeconfig);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start tokio runtime")?;
    rt.block_on(async move {
        let shutdown = async {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => return std::future::pending().await,
                };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        // One shutdown signal, fanned out to every component.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let signal = tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let metrics_server = match metrics_addr {
            Some(addr) => {
                Some(capstan_serve::metrics::bind(addr, registry, stopped(stop_rx.clone())).await?)
            }
            None => None,
        };
        let metrics_run = async {
            if let Some(server) = metrics_server {
                server.await?;
            }
            anyhow::Ok(())
        };
        let health_server = match healthz_addr {
            capstan_agent::healthz_addr::HealthzAddr::At(addr) => {
                match capstan_serve::health::bind(addr, health, stopped(stop_rx.clone())).await {
                    Ok(server) => Some(server),
                    Err(e) if healthz_asked => {
                        return Err(anyhow::Error::new(e)
                            .context("--healthz-addr (pass another address, or off)"));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "no health endpoint (pass --healthz-addr to choose its address)");
                        None
                    }
                }
            }
            capstan_agent::healthz_addr::HealthzAddr::Off => None,
        };
        let health_run = async {
            if let Some(server) = health_server {
                server.await?;
            }
            anyhow::Ok(())
        };
        // One API client (one connection pool) for the overlay and the proxy.
        let needs_api = components.contains(&Component::Proxy)
            || (components.contains(&Component::Overlay) && manager == SubnetManagerKind::Kube);
        let api = if needs_api {
            let source = capstan_k8s::ClientOptions::kubeconfig(kubeconfig.as_deref());
            Some(capstan_k8s::client(&source).await?)
        } else {
            None
        };
        let overlay_run = async {
            if components.contains(&Component::Overlay) {
                if let (SubnetManagerKind::Kube, Some(client)) = (manager, api.clone()) {
                    overlay::run_kube(opts, client, net_conf_file, stopped(stop_rx.clone()))
                        .await?;
                } else {
                    overlay::run(opts, stopped(stop_rx.clone())).await?;
                }
            }
            anyhow::Ok(())
        };
        let kubelet_run = async {
            if components.contains(&Component::Kubelet) {
                kubelet::run(kubelet_opts, stopped(stop_rx.clone())).await?;
            }
            anyhow::Ok(())
        };
        let proxy_run = async {
            if let (true, Some(client)) = (components.contains(&Component::Proxy), api.clone()) {
                capstan_proxy::component::run(
                    proxy_cfg,
                    client,
                    capstan_proxy::runner::RunnerConfig::default(),
                    proxy_metrics,
                    proxy_probe,
                    stopped(stop_rx.clone()),
                )
                .await;
            }
            anyhow::Ok(())
        };
        let r = tokio::try_join!(overlay_run, kubelet_run, proxy_run, metrics_run, health_run);
        signal.abort();
        r.map(|_| ())
    })?;
    Ok(())
}
