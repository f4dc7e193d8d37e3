//! `init`: makes whatever is missing under a PKI directory — the CA, the
//! serving certificate, client certificates and kubeconfigs for the admin
//! and each node, the token file, the service-account signing key pair —
//! and keeps every file that exists.

use std::net::IpAddr;
use std::path::PathBuf;

use ipnetwork::Ipv4Network;

use super::error::Error;
use super::issue::{Ca, IssuedPair};
use super::layout::Layout;
use super::report::InitReport;
use crate::auth::{MASTERS_GROUP, NODES_GROUP, NODE_USER_PREFIX};
use crate::kubeconfig;

/// What `init` is asked to make.
#[derive(Clone, Debug)]
pub struct InitOptions {
    pub dir: PathBuf,
    /// The URL clients use (goes into kubeconfigs; its host into the SANs).
    pub server: String,
    /// Extra names or IPs for the serving certificate.
    pub sans: Vec<String>,
    pub nodes: Vec<String>,
    pub service_cidr: Ipv4Network,
}

/// Makes whatever is missing under `opts.dir`.
pub fn init(opts: &InitOptions) -> Result<InitReport, Error> {
    let host = server_host(&opts.server)?;
    for n in &opts.nodes {
        if !valid_node_name(n) {
            return Err(Error::NodeName(n.clone()));
        }
    }
    let layout = Layout::new(&opts.dir);
    capstan_serve::files::ensure_private_dir(layout.dir())?;
    let mut report = InitReport::default();
    let ca = Ca::load_or_create(&layout, &mut report)?;

    let mut sans = vec![
        "127.0.0.1".to_string(),
        "localhost".to_string(),
        first_service_ip(opts.service_cidr).to_string(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        "kubernetes.default.svc.cluster.local".into(),
        host,
    ];
    sans.extend(opts.sans.iter().cloned());
    sans.sort();
    sans.dedup();
    ca.ensure_serving(&layout, "kube-apiserver", &sans, &mut report)?;

    let admin = ca.ensure_client(&layout, "admin", "admin", MASTERS_GROUP, &mut report)?;
    ensure_kubeconfig(&layout, "admin", &opts.server, &ca, &admin, &mut report)?;
    let mut node_users = Vec::new();
    for node in &opts.nodes {
        let stem = Layout::node_file_stem(node);
        let user = format!("{NODE_USER_PREFIX}{node}");
        let pair = ca.ensure_client(&layout, &stem, &user, NODES_GROUP, &mut report)?;
        ensure_kubeconfig(&layout, node, &opts.server, &ca, &pair, &mut report)?;
        node_users.push(user);
    }
    let tokens = layout.tokens();
    let added = crate::auth::token_file::ensure_tokens(&tokens, "admin", &node_users).map_err(
        |source| Error::Tokens {
            path: tokens.clone(),
            source,
        },
    )?;
    if added {
        report.created.push(tokens);
    } else {
        report.kept.push(tokens);
    }
    ensure_service_account_key(&layout, &mut report)?;
    Ok(report)
}

/// `sa.key` and `sa.pub`. An existing key is kept (replacing it would
/// invalidate every token issued); a lost `sa.pub` is rewritten from it.
fn ensure_service_account_key(layout: &Layout, report: &mut InitReport) -> Result<(), Error> {
    let (key_path, pub_path) = (layout.service_account_key(), layout.service_account_pub());
    let sa_err = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| Error::ServiceAccountKey { path, source }
    };
    if key_path.exists() {
        report.kept.push(key_path.clone());
        if pub_path.exists() {
            report.kept.push(pub_path);
        } else {
            let private = std::fs::read_to_string(&key_path).map_err(|source| Error::Io {
                what: "read",
                path: key_path.clone(),
                source,
            })?;
            let public = crate::auth::service_account::keys::public_pem_of(&private)
                .map_err(sa_err(&key_path))?;
            capstan_serve::files::write_new(&pub_path, public.as_bytes(), 0o644)?;
            report.created.push(pub_path);
        }
        return Ok(());
    }
    let (private, public) =
        crate::auth::service_account::keys::generate().map_err(sa_err(&key_path))?;
    // A stray public key without its private key verifies nothing we sign.
    let _ = std::fs::remove_file(&pub_path);
    capstan_serve::files::write_new(&key_path, private.as_bytes(), 0o600)?;
    capstan_serve::files::write_new(&pub_path, public.as_bytes(), 0o644)?;
    report.created.push(key_path);
    report.created.push(pub_path);
    Ok(())
}

fn ensure_kubeconfig(
    layout: &Layout,
    who: &str,
    server: &str,
    ca: &Ca,
    pair: &IssuedPair,
    report: &mut InitReport,
) -> Result<(), Error> {
    let path = layout.kubeconfig(who);
    if path.exists() {
        report.kept.push(path);
        return Ok(());
    }
    let text = kubeconfig::render(&kubeconfig::Credentials {
        cluster: "capstan",
        user: who,
        server,
        ca_pem: ca.cert_pem(),
        cert_pem: &pair.cert_pem,
        key_pem: &pair.key_pem,
    })
    .map_err(|source| Error::Kubeconfig {
        path: path.clone(),
        source,
    })?;
    capstan_serve::files::write_new(&path, text.as_bytes(), 0o600)?;
    report.created.push(path);
    Ok(())
}

/// The host part of `https://host:port`: it must be in the serving SANs.
fn server_host(url: &str) -> Result<String, Error> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| Error::ServerUrl(url.to_string()))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default().to_string()
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority, |(h, _)| h)
            .to_string()
    };
    if host.is_empty() {
        return Err(Error::ServerUrl(url.to_string()));
    }
    Ok(host)
}

/// The `kubernetes` Service's ClusterIP: the first address of the range.
pub fn first_service_ip(cidr: Ipv4Network) -> IpAddr {
    let base = u32::from(cidr.network());
    IpAddr::V4((base + 1).into())
}

fn valid_node_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 253
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && !n.starts_with(['-', '.'])
        && !n.ends_with(['-', '.'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_server_url() {
        assert_eq!(
            server_host("https://192.168.250.1:6443").unwrap(),
            "192.168.250.1"
        );
        assert_eq!(
            server_host("https://api.example:6443/").unwrap(),
            "api.example"
        );
        assert_eq!(server_host("https://[fd00::1]:6443").unwrap(), "fd00::1");
        assert!(server_host("http://x:1").is_err());
        assert!(server_host("https://").is_err());
    }

    #[test]
    fn first_service_ip_is_base_plus_one() {
        let cidr: Ipv4Network = "10.96.0.0/12".parse().unwrap();
        assert_eq!(first_service_ip(cidr).to_string(), "10.96.0.1");
    }

    #[test]
    fn node_names() {
        assert!(valid_node_name("node-1"));
        assert!(!valid_node_name("Node"));
        assert!(!valid_node_name("-a"));
        assert!(!valid_node_name("a/b"));
    }
}
