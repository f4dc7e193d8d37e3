//! The server's rustls configuration: the serving certificate, ALPN for
//! HTTP/2 and HTTP/1.1, and client certificates verified against the
//! cluster CA but not required, so bearer tokens and anonymous requests
//! (answered 401 later) still complete the handshake.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum Error {
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

pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
) -> Result<Arc<ServerConfig>, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = load_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|source| Error::Key {
        path: key.to_path_buf(),
        source,
    })?;
    let mut roots = RootCertStore::empty();
    for ca in load_certs(client_ca)? {
        roots.add(ca).map_err(|source| Error::ClientCa {
            path: client_ca.to_path_buf(),
            source,
        })?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|source| Error::Certs {
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(Error::NoCert(path.to_path_buf()));
    }
    Ok(certs)
}
