//! The in-cluster configuration a pod's client uses, as client-go's
//! `rest.InClusterConfig`: the API server from `KUBERNETES_SERVICE_HOST`
//! and `KUBERNETES_SERVICE_PORT`, the CA, namespace and token from the
//! service-account directory. The token and CA are given to kube-rs as
//! files, never as values, so its client re-reads them (at least once a
//! minute, as client-go) and a token the kubelet rotates is the one sent.
//! Kept here rather than `kube::Config::incluster` only so the directory
//! can be another one in tests.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::client_error::ClientError;

/// Where Kubernetes mounts a pod's service-account files.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

const HOST_ENV: &str = "KUBERNETES_SERVICE_HOST";
const PORT_ENV: &str = "KUBERNETES_SERVICE_PORT";

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// client-go's `inClusterConfig.Possible`: both variables set and a token
/// file in `dir`.
pub fn possible(dir: &Path) -> bool {
    env(HOST_ENV).is_some() && env(PORT_ENV).is_some() && dir.join("token").is_file()
}

fn bad(what: &str, path: &Path, e: impl std::fmt::Display) -> ClientError {
    ClientError::InCluster(format!("{what} {}: {e}", path.display()))
}

/// The configuration from the environment and the files in `dir`.
pub fn config(dir: &Path) -> Result<kube::Config, ClientError> {
    let (Some(host), Some(port)) = (env(HOST_ENV), env(PORT_ENV)) else {
        return Err(ClientError::InCluster(format!(
            "{HOST_ENV} and {PORT_ENV} must both be set"
        )));
    };
    let port: u16 = port
        .parse()
        .map_err(|_| ClientError::InCluster(format!("{PORT_ENV}={port:?} is not a port")))?;
    // An IPv6 ClusterIP goes in brackets.
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    let url = format!("https://{host}:{port}");
    let mut cfg = kube::Config::new(url.parse().map_err(|_| ClientError::Server(url.clone()))?);
    let token: PathBuf = dir.join("token");
    std::fs::metadata(&token).map_err(|e| bad("token", &token, e))?;
    let ca = dir.join("ca.crt");
    let certs = CertificateDer::pem_file_iter(&ca)
        .map_err(|e| bad("CA", &ca, e))?
        .map(|c| c.map(|c| c.as_ref().to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("CA", &ca, e))?;
    if certs.is_empty() {
        return Err(bad("CA", &ca, "no certificate in the file"));
    }
    cfg.root_cert = Some(certs);
    cfg.root_cert_file = Some(ca);
    cfg.auth_info.token_file = Some(token.display().to_string());
    if let Ok(ns) = std::fs::read_to_string(dir.join("namespace")) {
        if !ns.trim().is_empty() {
            cfg.default_namespace = ns.trim().to_string();
        }
    }
    Ok(cfg)
}
