//! One way to build a kube-rs client: from a kubeconfig file (optionally
//! pointed at another server, as the control plane's own loopback clients
//! are), or inferred as client-go's loading rules do — `$KUBECONFIG` when
//! set, else the in-cluster service account (`in_cluster`) when the pod
//! has one, else `~/.kube/config` — as a pod of a DaemonSet needs. Never
//! caches a client: callers keep the one they get.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

pub use crate::client_error::ClientError;
use crate::in_cluster;

/// Where the client's configuration comes from.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// A kubeconfig file; `None`: inferred.
    pub kubeconfig: Option<PathBuf>,
    /// Talk to this server instead of the kubeconfig's (`https://host:port`).
    pub server: Option<String>,
    /// How long a response may take (watches stay open longer than the
    /// default).
    pub read_timeout: Option<Duration>,
}

impl ClientOptions {
    /// The given kubeconfig, or inferred when `None`.
    pub fn kubeconfig(path: Option<&Path>) -> Self {
        ClientOptions {
            kubeconfig: path.map(Path::to_path_buf),
            ..ClientOptions::default()
        }
    }
}

/// The kube-rs configuration `opts` describe.
pub async fn config(opts: &ClientOptions) -> Result<kube::Config, ClientError> {
    // One TLS crypto provider for the process (rustls needs it chosen);
    // installing it twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut cfg = match &opts.kubeconfig {
        Some(path) => {
            let bad = |e: &dyn std::fmt::Display| ClientError::Kubeconfig {
                path: path.clone(),
                message: e.to_string(),
            };
            let kc = Kubeconfig::read_from(path).map_err(|e| bad(&e))?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| bad(&e))?
        }
        None if std::env::var_os("KUBECONFIG").is_none()
            && in_cluster::possible(Path::new(in_cluster::SERVICE_ACCOUNT_DIR)) =>
        {
            in_cluster::config(Path::new(in_cluster::SERVICE_ACCOUNT_DIR))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| ClientError::Infer(e.to_string()))?,
    };
    if let Some(server) = &opts.server {
        cfg.cluster_url = server
            .parse()
            .map_err(|_| ClientError::Server(server.clone()))?;
    }
    if let Some(t) = opts.read_timeout {
        cfg.read_timeout = Some(t);
    }
    Ok(cfg)
}

/// A client as `opts` describe.
pub async fn client(opts: &ClientOptions) -> Result<kube::Client, ClientError> {
    kube::Client::try_from(config(opts).await?).map_err(ClientError::Client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_kubeconfig_names_the_file() {
        let opts = ClientOptions::kubeconfig(Some(Path::new("/nonexistent/kubeconfig")));
        let err = client(&opts).await.err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("/nonexistent/kubeconfig")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_bad_server_override_is_refused() {
        let dir = std::env::temp_dir().join(format!("capstan-k8s-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok();
        let path = dir.join("kubeconfig");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n",
        )
        .ok();
        let opts = ClientOptions {
            kubeconfig: Some(path.clone()),
            server: Some("not a url".into()),
            read_timeout: None,
        };
        assert!(matches!(config(&opts).await, Err(ClientError::Server(_))));
        let ok = ClientOptions {
            kubeconfig: Some(path),
            server: Some("https://127.0.0.2:6443".into()),
            read_timeout: Some(Duration::from_secs(300)),
        };
        let cfg = config(&ok).await.ok();
        assert_eq!(
            cfg.as_ref().map(|c| c.cluster_url.to_string()),
            Some("https://127.0.0.2:6443/".into())
        );
        assert_eq!(
            cfg.and_then(|c| c.read_timeout),
            Some(Duration::from_secs(300))
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
