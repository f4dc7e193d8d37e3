//! The in-cluster configuration against a real TLS server on loopback:
//! `KUBERNETES_SERVICE_HOST/PORT` pick the server, `ca.crt` verifies it,
//! `namespace` is the default, and the token is read from its file — and
//! read again after the kubelet rotates it (an atomic rename, as its
//! AtomicWriter does), so the next requests carry the new token. kube-rs
//! re-reads the file about once a minute (as client-go); the wait polls
//! with a deadline. One test per process: it sets environment variables.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A CA and a server certificate for 127.0.0.1 signed by it.
fn pki() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca = rcgen::CertificateParams::default();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "test-ca");
    let ca_cert = ca.clone().self_signed(&ca_key).expect("ca");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("leaf");
    (ca_cert.pem(), leaf.pem(), key.serialize_pem())
}

/// Serves `/version` over TLS, recording each request's Authorization.
async fn serve(cert: &str, key: &str, seen: Arc<Mutex<Vec<String>>>) -> u16 {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<_, _>>()
        .expect("cert");
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let auth = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("authorization")
                            .then(|| v.trim().to_string())
                    })
                    .unwrap_or_default();
                if let Ok(mut s) = seen.lock() {
                    s.push(auth);
                }
                let body = serde_json::json!({
                    "major": "1", "minor": "33", "gitVersion": "v1.33.0-test",
                    "gitCommit": "", "gitTreeState": "", "buildDate": "",
                    "goVersion": "", "compiler": "", "platform": "linux/amd64"
                })
                .to_string();
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    port
}

/// The kubelet's way of replacing a file: whole, by rename.
fn rotate(dir: &Path, token: &str) {
    let tmp = dir.join(".token.tmp");
    std::fs::write(&tmp, token).expect("write token");
    std::fs::rename(&tmp, dir.join("token")).expect("rename token");
}

#[tokio::test]
async fn in_cluster_config_verifies_the_server_and_follows_a_rotated_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = pki();
    std::fs::write(dir.path().join("ca.crt"), &ca).expect("ca");
    std::fs::write(dir.path().join("namespace"), "team\n").expect("namespace");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let port = serve(&cert, &key, seen.clone()).await;

    // Without the variables (or the token) it is not possible.
    std::env::remove_var("KUBERNETES_SERVICE_HOST");
    std::env::remove_var("KUBERNETES_SERVICE_PORT");
    assert!(!capstan_k8s::in_cluster::possible(dir.path()));
    assert!(capstan_k8s::in_cluster::config(dir.path()).is_err());
    std::env::set_var("KUBERNETES_SERVICE_HOST", "127.0.0.1");
    std::env::set_var("KUBERNETES_SERVICE_PORT", port.to_string());
    assert!(
        !capstan_k8s::in_cluster::possible(dir.path()),
        "no token yet"
    );
    rotate(dir.path(), "token-one");
    assert!(capstan_k8s::in_cluster::possible(dir.path()));

    let cfg = capstan_k8s::in_cluster::config(dir.path()).expect("config");
    assert_eq!(cfg.default_namespace, "team");
    assert_eq!(
        cfg.cluster_url.to_string(),
        format!("https://127.0.0.1:{port}/")
    );
    let client = kube::Client::try_from(cfg).expect("client");
    let v = client.apiserver_version().await.expect("GET /version");
    assert_eq!(v.git_version, "v1.33.0-test");
    assert_eq!(
        seen.lock().expect("seen").last().cloned(),
        Some("Bearer token-one".to_string())
    );

    rotate(dir.path(), "token-two");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        client.apiserver_version().await.expect("GET /version");
        let last = seen.lock().expect("seen").last().cloned();
        if last.as_deref() == Some("Bearer token-two") {
            break;
        }
        assert_eq!(
            last.as_deref(),
            Some("Bearer token-one"),
            "only the two tokens are ever sent"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "the client still sends the old token 90 s after the rotation"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // A CA file without a certificate is a clear error.
    std::fs::write(dir.path().join("ca.crt"), "").expect("ca");
    let err = capstan_k8s::in_cluster::config(dir.path())
        .err()
        .map(|e| e.to_string());
    assert!(
        err.as_deref().is_some_and(|e| e.contains("ca.crt")),
        "{err:?}"
    );
}
