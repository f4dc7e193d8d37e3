//! The API server's state — configuration, storage, authorizer and the
//! service IP/port ranges — and its start-up step (the system namespaces).
//! It holds no request handling: that is `handlers`, `rest` and `registry`.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use ipnetwork::Ipv4Network;

use crate::auth::bearer::BearerAuthenticator;
use crate::auth::rbac::{self, Policy};
use crate::auth::service_account::TokenIssuer;
use crate::auth::{Authorizer, ClusterAuthorizer};
use crate::registry::service::Ranges;
use crate::resources;
use crate::rest;
use crate::status::ApiError;
use crate::storage::Storage;

/// The namespaces every cluster has.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Cluster IPs are allocated from here.
    pub service_cidr: Ipv4Network,
    pub node_port_range: RangeInclusive<u16>,
    /// Root of every key the server writes (Kubernetes uses "/registry").
    pub etcd_prefix: String,
    /// Bodies larger than this are answered 413.
    pub max_body_bytes: usize,
    /// How often a watch that asked for bookmarks gets one.
    pub bookmark_interval: Duration,
    /// The server's version, as `/version` reports it.
    pub git_version: String,
    /// TLS (CA and client certificate) for calls to a node's agent
    /// (`pods/log`); `None` speaks plain HTTP (tests only).
    pub agent_tls: Option<Arc<rustls::ClientConfig>>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            service_cidr: Ipv4Network::new(std::net::Ipv4Addr::new(10, 96, 0, 0), 12)
                .unwrap_or_else(|_| unreachable!("constant prefix is valid")),
            node_port_range: 30000..=32767,
            etcd_prefix: "/registry".into(),
            max_body_bytes: 3 * 1024 * 1024,
            bookmark_interval: Duration::from_secs(60),
            git_version: format!("v1.33.0-capstan.{}", env!("CARGO_PKG_VERSION")),
            agent_tls: None,
        }
    }
}

pub struct ApiServer {
    pub(crate) storage: Storage,
    pub(crate) config: ApiConfig,
    pub(crate) authorizer: Arc<dyn Authorizer>,
    pub(crate) ranges: Ranges,
    /// Bearer-token authentication, for TokenReview (the edge holds the
    /// same one); None when the server was built without it.
    pub(crate) bearer: Option<Arc<BearerAuthenticator>>,
    /// Signs TokenRequest's tokens; None serves no `serviceaccounts/token`.
    pub(crate) token_issuer: Option<Arc<TokenIssuer>>,
    /// The RBAC objects in memory: what escalation checks and rules
    /// reviews read, and what `ClusterAuthorizer` decides with.
    pub(crate) rbac: Arc<Policy>,
    /// Whether the bootstrap RBAC objects have been reconciled once.
    rbac_bootstrapped: std::sync::atomic::AtomicBool,
}

impl ApiServer {
    /// A server with `authorizer`; its RBAC policy stays empty unless
    /// `start_rbac` feeds it (tests of the REST layer pass `AllowAll`).
    pub fn new(
        etcd: etcd_client::Client,
        config: ApiConfig,
        authorizer: Arc<dyn Authorizer>,
    ) -> Self {
        Self::with_policy(etcd, config, authorizer, Policy::new())
    }

    /// The server capstan-control runs: masters, the node rules and RBAC
    /// (`ClusterAuthorizer`). Call `start_rbac` once on a runtime.
    pub fn with_rbac(etcd: etcd_client::Client, config: ApiConfig) -> Self {
        let policy = Policy::new();
        let authorizer = Arc::new(ClusterAuthorizer::new(policy.clone()));
        Self::with_policy(etcd, config, authorizer, policy)
    }

    fn with_policy(
        etcd: etcd_client::Client,
        config: ApiConfig,
        authorizer: Arc<dyn Authorizer>,
        rbac: Arc<Policy>,
    ) -> Self {
        let ranges = Ranges {
            cidr: config.service_cidr,
            node_ports: config.node_port_range.clone(),
        };
        ApiServer {
            storage: Storage::new(etcd, &config.etcd_prefix),
            config,
            authorizer,
            ranges,
            bearer: None,
            token_issuer: None,
            rbac,
            rbac_bootstrapped: Default::default(),
        }
    }

    /// Serves TokenReview with `bearer` (the authenticator the edge uses)
    /// and TokenRequest with `issuer` when there is a signing key.
    pub fn with_tokens(
        mut self,
        bearer: Arc<BearerAuthenticator>,
        issuer: Option<Arc<TokenIssuer>>,
    ) -> Self {
        self.bearer = Some(bearer);
        self.token_issuer = issuer;
        self
    }

    /// Starts feeding the RBAC policy from etcd (a list and watch per
    /// kind, retried for ever) and the ClusterRole aggregation.
    pub fn start_rbac(self: &Arc<Self>) {
        rbac::feed::spawn(self.storage.clone(), self.rbac.clone());
        tokio::spawn(rbac::aggregate::run(self.clone()));
    }

    /// Ready to authorize: the RBAC policy is loaded and the bootstrap
    /// roles exist (kube-apiserver's `poststarthook/rbac/bootstrap-roles`).
    pub fn rbac_ready(&self) -> Result<(), String> {
        if !self.rbac.is_synced() {
            return Err("RBAC policy not loaded yet".into());
        }
        if !self
            .rbac_bootstrapped
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err("bootstrap RBAC objects not reconciled yet".into());
        }
        Ok(())
    }

    pub fn authorizer(&self) -> &Arc<dyn Authorizer> {
        &self.authorizer
    }

    pub fn config(&self) -> &ApiConfig {
        &self.config
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Creates the system namespaces and the bootstrap RBAC objects that
    /// are missing. Call once before serving (again until it succeeds);
    /// safe to repeat and to race with another server.
    pub async fn bootstrap(&self) -> Result<(), ApiError> {
        self.bootstrap_namespaces().await?;
        rbac::bootstrap::reconcile(self).await?;
        self.rbac_bootstrapped
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    async fn bootstrap_namespaces(&self) -> Result<(), ApiError> {
        let Some(res) = resources::find("", "v1", "namespaces") else {
            return Err(ApiError::Internal(
                "namespaces missing from the resource table".into(),
            ));
        };
        for ns in SYSTEM_NAMESPACES {
            let body = serde_json::json!({"metadata": {"name": ns}});
            match rest::create(self, res, None, body).await {
                Ok(_) | Err(ApiError::AlreadyExists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
