//! `capstan-control`: parses flags and wires the API server, scheduler and
//! controllers. It owns no logic of its own.
//!
//!   capstan-control init --dir DIR --server https://IP:6443 [--node N]...
//!   capstan-control [serve] --pki-dir DIR --etcd-endpoints URL,...

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use capstan_control::apiserver::{self, ApiConfig, ApiServer};
use capstan_control::auth::token_file::TokenFile;
use capstan_control::auth::ClusterAuthorizer;
use capstan_control::clients;
use capstan_control::controllers::node_ipam::{self, ClusterCidrs, ConfigError, MaskFlags};
use capstan_control::pki::{self, Layout};
use capstan_control::server::{self, etcd::EtcdTls, Authenticator, Health, Metrics};
use clap::{Args, Parser, Subcommand};
use ipnetwork::{IpNetwork, Ipv4Network};

#[derive(Parser, Debug)]
#[command(
    name = "capstan-control",
    version,
    about = "Capstan control plane",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Make the cluster CA, certificates, token file and kubeconfigs
    /// (keeps whatever exists).
    Init(InitArgs),
    /// Serve the Kubernetes API over HTTPS (the default).
    Serve(Box<ServeArgs>),
}

#[derive(Args, Debug)]
struct InitArgs {
    /// Directory for the CA, certificates, tokens.csv and kubeconfigs.
    #[arg(long)]
    dir: PathBuf,
    /// The API server's URL as clients reach it (https://HOST:PORT).
    #[arg(long)]
    server: String,
    /// Extra DNS names or IPs for the serving certificate.
    #[arg(long = "san", value_delimiter = ',')]
    sans: Vec<String>,
    /// Nodes to issue credentials for (certificate, token, kubeconfig).
    #[arg(long = "node", value_delimiter = ',')]
    nodes: Vec<String>,
    /// Service ClusterIP range: its first address goes into the SANs.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cidr: Ipv4Network,
}

#[derive(Args, Debug, Clone)]
struct ServeArgs {
    /// etcd endpoints, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    etcd_endpoints: Vec<String>,
    /// CA that signed etcd's serving certificate (etcd over TLS).
    #[arg(long)]
    etcd_cafile: Option<PathBuf>,
    /// Client certificate for etcd.
    #[arg(long)]
    etcd_certfile: Option<PathBuf>,
    /// Key of --etcd-certfile.
    #[arg(long)]
    etcd_keyfile: Option<PathBuf>,
    /// Key prefix of the API's objects in etcd.
    #[arg(long, default_value = "/registry")]
    etcd_prefix: String,
    /// Directory `init` wrote; sets the four files below unless given.
    #[arg(long)]
    pki_dir: Option<PathBuf>,
    #[arg(long)]
    tls_cert_file: Option<PathBuf>,
    #[arg(long)]
    tls_private_key_file: Option<PathBuf>,
    /// CA for client certificates.
    #[arg(long)]
    client_ca_file: Option<PathBuf>,
    /// Bearer tokens: token,user,uid,"group1,group2" per line.
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: IpAddr,
    #[arg(long, default_value_t = 6443)]
    secure_port: u16,
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cidr: Ipv4Network,
    /// NodePort range, FIRST-LAST.
    #[arg(long, default_value = "30000-32767", value_parser = parse_port_range)]
    service_node_port_range: (u16, u16),
    /// How long requests in flight may finish after SIGTERM.
    #[arg(long, default_value_t = 5)]
    shutdown_grace_seconds: u64,
    /// Controllers to run, as kube-controller-manager: `*` for all, `name`
    /// to add, `-name` to remove; empty for none.
    #[arg(long, value_delimiter = ',', default_value = "*")]
    controllers: Vec<String>,
    /// Run the scheduler (`--scheduler=false` to leave pods unbound).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    scheduler: bool,
    /// Credentials the scheduler and controllers use against this server
    /// (default: the admin kubeconfig in --pki-dir).
    #[arg(long)]
    loopback_kubeconfig: Option<PathBuf>,
    /// Give every node a pod CIDR from --cluster-cidr (node IPAM).
    #[arg(long)]
    allocate_node_cidrs: bool,
    /// The pod network node CIDRs are carved from: one CIDR, or an IPv4
    /// and an IPv6 one comma-separated (dual-stack; the first is podCIDR).
    #[arg(long, default_value = "10.244.0.0/16", value_parser = parse_cluster_cidr)]
    cluster_cidr: ClusterCidrList,
    /// Prefix length of each node's pod CIDR, single-stack clusters only
    /// [default: 24 for IPv4, 64 for IPv6].
    #[arg(long)]
    node_cidr_mask_size: Option<u8>,
    /// Prefix length of each node's IPv4 pod CIDR [default: 24].
    #[arg(long)]
    node_cidr_mask_size_ipv4: Option<u8>,
    /// Prefix length of each node's IPv6 pod CIDR [default: 64].
    #[arg(long)]
    node_cidr_mask_size_ipv6: Option<u8>,
    /// How long a node may stay silent before it is Ready=Unknown, e.g. 40s.
    #[arg(long, default_value = "40s", value_parser = parse_seconds)]
    node_monitor_grace_period: Duration,
}

/// `--cluster-cidr`'s CIDRs (a named type: clap treats a bare Vec as a
/// list of values).
#[derive(Debug, Clone)]
struct ClusterCidrList(Vec<IpNetwork>);

fn parse_cluster_cidr(s: &str) -> Result<ClusterCidrList, String> {
    node_ipam::config::parse_cluster_cidrs(s)
        .map(ClusterCidrList)
        // clap names the flag itself: "invalid value 'x' for '--cluster-cidr'".
        .map_err(|e| {
            e.to_string()
                .trim_start_matches("--cluster-cidr: ")
                .to_string()
        })
}

/// The node IPAM configuration when --allocate-node-cidrs is on, checked
/// up front so a bad combination is a usage error, not a failed start.
fn node_ipam_config(a: &ServeArgs) -> Result<Option<ClusterCidrs>, ConfigError> {
    if !a.allocate_node_cidrs {
        return Ok(None);
    }
    let masks = MaskFlags {
        single: a.node_cidr_mask_size,
        v4: a.node_cidr_mask_size_ipv4,
        v6: a.node_cidr_mask_size_ipv6,
    };
    ClusterCidrs::new(&a.cluster_cidr.0, masks).map(Some)
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let n = s.strip_suffix('s').unwrap_or(s);
    n.parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| format!("{s:?} is not a number of seconds like 40s"))
}

fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("{s:?} is not FIRST-LAST"))?;
    let a: u16 = a.trim().parse().map_err(|_| format!("bad port {a:?}"))?;
    let b: u16 = b.trim().parse().map_err(|_| format!("bad port {b:?}"))?;
    if a == 0 || a > b {
        return Err(format!("empty or zero range {s}"));
    }
    Ok((a, b))
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        // --help and --version go to stdout and succeed.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            // The first paragraph, on one line: a missing argument's name
            // is on the line after "required arguments were not provided".
            let msg = e.render().to_string();
            let first: Vec<&str> = msg
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            eprintln!(
                "capstan-control: {} (see --help)",
                first.join(" ").trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    let serve_args = match &cli.command {
        Some(Cmd::Init(_)) => None,
        Some(Cmd::Serve(a)) => Some(a.as_ref()),
        None => Some(&cli.serve),
    };
    let ipam = match serve_args.map(node_ipam_config).transpose() {
        Ok(c) => c.flatten(),
        Err(e) => {
            eprintln!("capstan-control: {e} (see --help)");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let result = match cli.command {
        Some(Cmd::Init(a)) => init(a),
        Some(Cmd::Serve(a)) => serve(*a, ipam),
        None => serve(cli.serve, ipam),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("capstan-control: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each said once (some errors
/// repeat their source in their own message).
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn init(a: InitArgs) -> anyhow::Result<()> {
    let report = pki::init(&pki::InitOptions {
        dir: a.dir.clone(),
        server: a.server,
        sans: a.sans,
        nodes: a.nodes,
        service_cidr: a.service_cidr,
    })?;
    // A closed stdout (`| head`) ends the listing, it is not an error:
    // the files are written by now.
    let mut out = std::io::stdout().lock();
    let lines = report
        .created
        .iter()
        .map(|p| ("created", p))
        .chain(report.kept.iter().map(|p| ("kept   ", p)));
    for (what, p) in lines {
        if writeln!(out, "{what} {}", p.display()).is_err() {
            break;
        }
    }
    Ok(())
}

/// The four files the edge needs, from --pki-dir unless given one by one.
struct EdgeFiles {
    cert: PathBuf,
    key: PathBuf,
    client_ca: PathBuf,
    tokens: Option<PathBuf>,
}

fn edge_files(a: &ServeArgs) -> anyhow::Result<EdgeFiles> {
    let layout = a.pki_dir.as_ref().map(Layout::new);
    let pick = |given: &Option<PathBuf>, from_dir: fn(&Layout) -> PathBuf, flag: &str| {
        given
            .clone()
            .or_else(|| layout.as_ref().map(from_dir))
            .with_context(|| format!("--{flag} or --pki-dir is required (HTTPS only)"))
    };
    let tokens = a
        .token_auth_file
        .clone()
        .or_else(|| layout.as_ref().map(Layout::tokens).filter(|p| p.exists()));
    Ok(EdgeFiles {
        cert: pick(&a.tls_cert_file, Layout::serving_cert, "tls-cert-file")?,
        key: pick(
            &a.tls_private_key_file,
            Layout::serving_key,
            "tls-private-key-file",
        )?,
        client_ca: pick(&a.client_ca_file, Layout::ca_cert, "client-ca-file")?,
        tokens,
    })
}

fn serve(a: ServeArgs, ipam: Option<ClusterCidrs>) -> anyhow::Result<()> {
    let files = edge_files(&a)?;
    let tls = server::tls::server_config(&files.cert, &files.key, &files.client_ca)?;
    let tokens = match &files.tokens {
        Some(p) => TokenFile::load(p).with_context(|| format!("token file {}", p.display()))?,
        None => TokenFile::default(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    runtime.block_on(async move {
        let etcd_tls = EtcdTls {
            ca: a.etcd_cafile.clone(),
            cert: a.etcd_certfile.clone(),
            key: a.etcd_keyfile.clone(),
        };
        let etcd = server::etcd::connect(&a.etcd_endpoints, &etcd_tls).await?;
        let addr = SocketAddr::new(a.bind_address, a.secure_port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listen on {addr}"))?;
        let health = Health::new(Some(etcd.clone()));
        let metrics = Arc::new(Metrics::new());
        let api = api_router(etcd, &a).await?;
        let app = server::app(
            api,
            Arc::new(Authenticator::new(tokens)),
            health.clone(),
            metrics,
        );
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            terminated().await;
            tracing::info!("SIGTERM: no longer ready, draining");
            let _ = stop_tx.send(true);
        });
        let clients = start_clients(&a, ipam, addr, stopped(stop_rx.clone())).await?;
        tracing::info!(%addr, etcd = ?a.etcd_endpoints, "serving the Kubernetes API over HTTPS");
        let shutdown = async move {
            stopped(stop_rx).await;
            health.set_shutting_down();
        };
        server::serve(
            listener,
            tls,
            app,
            shutdown,
            Duration::from_secs(a.shutdown_grace_seconds),
        )
        .await
        .context("serve")?;
        if let Some(task) = clients {
            let _ = task.await;
        }
        tracing::info!("stopped");
        Ok(())
    })
}

/// The REST core on etcd, with the system namespaces in place if etcd lets us.
async fn api_router(etcd: etcd_client::Client, a: &ServeArgs) -> anyhow::Result<axum::Router> {
    let (first, last) = a.service_node_port_range;
    // pods/log calls agents as the admin (a client certificate from the
    // cluster CA, which agents trust through --client-ca-file).
    let agent_tls = match &a.pki_dir {
        Some(dir) => {
            let l = Layout::new(dir);
            Some(
                apiserver::logs::agent_client_tls(&l.client_cert("admin"), &l.client_key("admin"))
                    .map_err(anyhow::Error::msg)?,
            )
        }
        None => None,
    };
    let config = ApiConfig {
        service_cidr: a.service_cidr,
        node_port_range: first..=last,
        etcd_prefix: a.etcd_prefix.clone(),
        agent_tls,
        ..ApiConfig::default()
    };
    let api = Arc::new(ApiServer::new(etcd, config, Arc::new(ClusterAuthorizer)));
    // etcd may be down or refusing us at start: serve anyway (/readyz says
    // so, and the system namespaces are also made on first use).
    if let Err(e) = api.bootstrap().await {
        tracing::warn!(error = %e, "could not create the system namespaces in etcd yet");
    }
    Ok(apiserver::router(api))
}

async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// The scheduler and controllers, as API clients of this server over
/// HTTPS (loopback, or the bind address when it is a specific one).
async fn start_clients(
    a: &ServeArgs,
    ipam: Option<ClusterCidrs>,
    addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let list: Vec<String> = a
        .controllers
        .iter()
        .filter(|c| !c.trim().is_empty())
        .cloned()
        .collect();
    let mut controllers = clients::controller_options(&list)?;
    controllers.node_monitor_grace = a.node_monitor_grace_period;
    controllers.allocate_node_cidrs = ipam;
    if !a.scheduler && !controllers.any() {
        return Ok(None);
    }
    let kubeconfig = a
        .loopback_kubeconfig
        .clone()
        .or_else(|| {
            a.pki_dir
                .as_ref()
                .map(|d| Layout::new(d).kubeconfig("admin"))
        })
        .context(
            "the scheduler and controllers need --loopback-kubeconfig or --pki-dir \
             (or run with --scheduler=false --controllers=)",
        )?;
    let host = if addr.ip().is_unspecified() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        addr.ip()
    };
    let server = format!("https://{}", SocketAddr::new(host, addr.port()));
    let client = clients::loopback_client(&kubeconfig, &server).await?;
    tracing::info!(%server, scheduler = a.scheduler, ?list, "starting the scheduler and controllers");
    Ok(Some(tokio::spawn(clients::run(
        client,
        a.scheduler,
        controllers,
        shutdown,
    ))))
}

async fn terminated() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "no SIGTERM handler; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
