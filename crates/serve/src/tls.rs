//! TLS material for Capstan's servers: PEM certificate chains and keys,
//! and the rustls server configuration (ALPN for HTTP/2 and HTTP/1.1;
//! client certificates verified against a CA but not required, so bearer
//! tokens and anonymous requests, answered 401 later, still complete the
//! handshake). Never writes files and never decides who is authorized.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("read certificates from {}: {source}", path.display())]
    Certs {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("no certificate in {}", .0.display())]
    NoCert(PathBuf),
    #[error("read private key from {}: {source}", path.display())]
    Key {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("client CA {}: {source}", path.display())]
    ClientCa {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("serving certificate and key do not fit together: {0}")]
    Config(#[from] rustls::Error),
}

/// Every certificate in the PEM file `path` (at least one).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Certs {
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCert(path.to_path_buf()));
    }
    Ok(certs)
}

/// The private key in the PEM file `path`.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| TlsError::Key {
        path: path.to_path_buf(),
        source,
    })
}

/// A server config for `cert`/`key` that verifies (optional) client
/// certificates against `client_ca`, or asks for none without one;
/// ALPN offers HTTP/2 and HTTP/1.1.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_alpn(cert, key, client_ca, &[b"h2", b"http/1.1"])
}

/// `server_config` offering only the `alpn` protocols (a server that
/// speaks HTTP/1.1 alone, as the agent API does, says so).
pub fn server_config_alpn(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = load_certs(cert)?;
    let key = load_key(key)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let mut config = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in load_certs(ca)? {
                roots.add(c).map_err(|source| TlsError::ClientCa {
                    path: ca.to_path_buf(),
                    source,
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()?;
            builder
                .with_client_cert_verifier(verifier)
                .with_single_cert(chain, key)?
        }
        None => builder.with_no_client_auth().with_single_cert(chain, key)?,
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_a_pair_and_names_the_bad_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let (c, k) = (dir.path().join("a.crt"), dir.path().join("a.key"));
        std::fs::write(&c, cert.pem()).expect("write");
        std::fs::write(&k, key.serialize_pem()).expect("write");
        let cfg = server_config(&c, &k, Some(&c)).expect("config");
        assert_eq!(cfg.alpn_protocols[0], b"h2");
        assert!(server_config(&c, &k, None).is_ok());
        let empty = dir.path().join("empty.crt");
        std::fs::write(&empty, "").expect("write");
        assert!(matches!(load_certs(&empty), Err(TlsError::NoCert(_))));
        let err = load_key(&dir.path().join("missing.key"))
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("missing.key")));
    }
}
