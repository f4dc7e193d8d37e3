//! Kubeconfig files for the credentials `init` issues, built from kube-rs'
//! own kubeconfig types so kubectl and kube-rs read them alike. Certificates
//! and keys are embedded, so a kubeconfig can be copied on its own.

use std::collections::BTreeMap;

use base64::Engine;
use kube::config::{
    AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
};
use secrecy::SecretString;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("encode kubeconfig: {0}")]
    Encode(#[from] serde_yaml::Error),
}

/// What one kubeconfig holds: one cluster, one user, one context.
pub struct Credentials<'a> {
    pub cluster: &'a str,
    pub user: &'a str,
    pub server: &'a str,
    pub ca_pem: &'a str,
    pub cert_pem: &'a str,
    pub key_pem: &'a str,
}

pub fn render(c: &Credentials<'_>) -> Result<String, Error> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let context = format!("{}@{}", c.user, c.cluster);
    let config = Kubeconfig {
        clusters: vec![NamedCluster {
            name: c.cluster.to_string(),
            cluster: Some(Cluster {
                server: Some(c.server.to_string()),
                certificate_authority_data: Some(b64(c.ca_pem)),
                ..Cluster::default()
            }),
            other: BTreeMap::new(),
        }],
        auth_infos: vec![NamedAuthInfo {
            name: c.user.to_string(),
            auth_info: Some(AuthInfo {
                client_certificate_data: Some(b64(c.cert_pem)),
                client_key_data: Some(SecretString::from(b64(c.key_pem))),
                ..AuthInfo::default()
            }),
            other: BTreeMap::new(),
        }],
        contexts: vec![NamedContext {
            name: context.clone(),
            context: Some(Context {
                cluster: c.cluster.to_string(),
                user: Some(c.user.to_string()),
                ..Context::default()
            }),
            other: BTreeMap::new(),
        }],
        current_context: Some(context),
        kind: Some("Config".into()),
        api_version: Some("v1".into()),
        ..Kubeconfig::default()
    };
    Ok(serde_yaml::to_string(&config)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_kube_rs() {
        let text = render(&Credentials {
            cluster: "capstan",
            user: "admin",
            server: "https://127.0.0.1:6443",
            ca_pem: "CA",
            cert_pem: "CERT",
            key_pem: "KEY",
        })
        .unwrap();
        let back = Kubeconfig::from_yaml(&text).unwrap();
        assert_eq!(back.current_context.as_deref(), Some("admin@capstan"));
        let cluster = back.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
        assert_eq!(cluster.certificate_authority_data.as_deref(), Some("Q0E="));
        assert!(text.contains("client-key-data: S0VZ"), "{text}");
    }
}
