//! `capstan-control serve`: wires the serving edge, the API server on etcd
//! and — as loopback API clients — the scheduler and controllers, and
//! drains on SIGTERM. Wiring only: the logic is in the library crates.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use capstan_apiserver::auth::bearer::BearerAuthenticator;
use capstan_apiserver::auth::service_account::{
    self as sa, IssuerOptions, ServiceAccountAuthenticator, TokenIssuer, TokenValidator,
};
use capstan_apiserver::auth::token_file::TokenFile;
use capstan_apiserver::pki::Layout;
use capstan_apiserver::server::{self, etcd::EtcdTls, Authenticator, Health, Metrics};
use capstan_apiserver::{self as apiserver, ApiConfig, ApiServer};
use capstan_controllers::clients;
use capstan_controllers::node_ipam::ClusterCidrs;

use crate::args::ServeArgs;

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

/// Service-account tokens from the flags: the issuer (when there is a
/// signing key) and the validator (when there is any key), and the API
/// audiences. Loaded before serving so a bad key is a failed start.
struct ServiceAccountKeys {
    issuer: Option<TokenIssuer>,
    validator: Option<TokenValidator>,
    api_audiences: Vec<String>,
}

fn service_account_keys(a: &ServeArgs) -> anyhow::Result<ServiceAccountKeys> {
    let layout = a.pki_dir.as_ref().map(Layout::new);
    let signing_path = a.service_account_signing_key_file.clone().or_else(|| {
        layout
            .as_ref()
            .map(Layout::service_account_key)
            .filter(|p| p.exists())
    });
    let mut verify_paths = a.service_account_key_files.clone();
    if verify_paths.is_empty() {
        verify_paths.extend(
            layout
                .as_ref()
                .map(Layout::service_account_pub)
                .filter(|p| p.exists()),
        );
    }
    let signing = signing_path
        .as_deref()
        .map(sa::load_signing_key)
        .transpose()?;
    let mut keys = Vec::new();
    for p in &verify_paths {
        keys.extend(sa::load_verifying_keys(p)?);
    }
    // Tokens this server signs always verify, whatever the key files say.
    if let Some(k) = &signing {
        if !keys.iter().any(|v| v.kid == k.public.kid) {
            keys.push(k.public.clone());
        }
    }
    let issuers = a.service_account_issuers.clone();
    let first = issuers
        .first()
        .cloned()
        .context("--service-account-issuer may not be empty")?;
    let api_audiences = if a.api_audiences.is_empty() {
        vec![first.clone()]
    } else {
        a.api_audiences.clone()
    };
    let max = a
        .service_account_max_token_expiration
        .filter(|d| !d.is_zero())
        .map(|d| d.as_secs() as i64);
    let validator = (!keys.is_empty()).then(|| TokenValidator::new(issuers, keys));
    if validator.is_none() {
        tracing::warn!("no service-account key (sa.pub in --pki-dir or --service-account-key-file): service-account tokens are not accepted");
    }
    let issuer = signing.map(|key| {
        TokenIssuer::new(
            key,
            IssuerOptions {
                issuer: first,
                api_audiences: api_audiences.clone(),
                max_expiration_seconds: max,
                extend_expiration: a.service_account_extend_token_expiration,
            },
        )
    });
    Ok(ServiceAccountKeys {
        issuer,
        validator,
        api_audiences,
    })
}

pub fn serve(a: ServeArgs, ipam: Option<ClusterCidrs>) -> anyhow::Result<()> {
    let files = edge_files(&a)?;
    let sa_keys = service_account_keys(&a)?;
    let tls = capstan_serve::tls::server_config(&files.cert, &files.key, Some(&files.client_ca))?;
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
        let (api, authn) = api_router(etcd, &a, tokens, sa_keys, &health).await?;
        let app = server::app(api, authn, health.clone(), metrics);
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

/// The REST core on etcd with RBAC and service-account tokens; the
/// system namespaces and bootstrap RBAC objects are made in the background
/// until etcd lets us, and `/readyz` waits for them and for the RBAC policy.
async fn api_router(
    etcd: etcd_client::Client,
    a: &ServeArgs,
    tokens: TokenFile,
    sa_keys: ServiceAccountKeys,
    health: &Health,
) -> anyhow::Result<(axum::Router, Arc<Authenticator>)> {
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
    let api = ApiServer::with_rbac(etcd, config);
    let sa_authn = sa_keys
        .validator
        .map(|v| ServiceAccountAuthenticator::new(v, api.storage().clone()));
    let bearer = Arc::new(BearerAuthenticator::new(
        tokens,
        sa_authn,
        sa_keys.api_audiences,
    ));
    let api = Arc::new(api.with_tokens(bearer.clone(), sa_keys.issuer.map(Arc::new)));
    api.start_rbac();
    let ready = api.clone();
    health.add_check(
        "poststarthook/rbac/bootstrap-roles",
        Arc::new(move || ready.rbac_ready()),
    );
    // etcd may be down or refusing us at start: serve anyway (/readyz says
    // so, and the system namespaces are also made on first use).
    if let Err(e) = api.bootstrap().await {
        tracing::warn!(error = %e, "could not create the system namespaces and RBAC roles in etcd yet; retrying");
        let retry = api.clone();
        tokio::spawn(async move {
            let mut wait = Duration::from_millis(500);
            loop {
                tokio::time::sleep(wait).await;
                match retry.bootstrap().await {
                    Ok(()) => {
                        tracing::info!("system namespaces and bootstrap RBAC objects in place");
                        return;
                    }
                    Err(e) => tracing::debug!(error = %e, "bootstrap still failing"),
                }
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        });
    }
    Ok((
        apiserver::router(api),
        Arc::new(Authenticator::with_bearer(bearer)),
    ))
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
