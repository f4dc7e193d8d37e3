//! The agent API's TLS: the serving certificate from files, else a
//! self-signed one made once and kept under the kubelet's root directory
//! (as kubelet does), and client certificates verified against the client
//! CA but not required, so a request without one is answered 401 instead
//! of failing the handshake. Never reads the CA's key; it has none.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("read {}: {source}", path.display())]
    Pem {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("no certificate in {}", .0.display())]
    NoCert(PathBuf),
    #[error("client CA {}: {source}", path.display())]
    ClientCa {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("serving certificate: {0}")]
    Config(#[from] rustls::Error),
    #[error("make self-signed certificate: {0}")]
    SelfSign(#[from] rcgen::Error),
    #[error("write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where the serving certificate comes from.
#[derive(Clone, Debug)]
pub enum Serving {
    Files {
        cert: PathBuf,
        key: PathBuf,
    },
    /// Self-signed for these names/IPs, kept in `dir` across restarts.
    SelfSigned {
        dir: PathBuf,
        names: Vec<String>,
    },
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let v = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Pem {
            path: path.into(),
            source,
        })?;
    if v.is_empty() {
        return Err(TlsError::NoCert(path.into()));
    }
    Ok(v)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| TlsError::Pem {
        path: path.into(),
        source,
    })
}

/// The self-signed pair in `dir` (`kubelet.crt`, `kubelet.key`), made if
/// either is missing; the key is created mode 0600.
pub fn ensure_self_signed(dir: &Path, names: &[String]) -> Result<(PathBuf, PathBuf), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let (cert, key) = (dir.join("kubelet.crt"), dir.join("kubelet.key"));
    if cert.is_file() && key.is_file() {
        return Ok((cert, key));
    }
    let write = |path: &Path, data: &[u8], mode: u32| {
        let err = |source| TlsError::Write {
            path: path.into(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        let tmp = path.with_extension("tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(err)?;
        f.write_all(data).and_then(|_| f.sync_all()).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    };
    let mut params = rcgen::CertificateParams::new(names.to_vec())?;
    let cn = names
        .first()
        .cloned()
        .unwrap_or_else(|| "capstan-agent".into());
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{cn}@capstan-agent"));
    // Back-dated a little so a client whose clock lags still accepts it.
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(365);
    let pair = rcgen::KeyPair::generate()?;
    let c = params.self_signed(&pair)?;
    // Key first: a crash in between leaves no certificate without its key.
    write(&key, pair.serialize_pem().as_bytes(), 0o600)?;
    write(&cert, c.pem().as_bytes(), 0o644)?;
    Ok((cert, key))
}

pub fn server_config(
    serving: &Serving,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let (cert_path, key_path) = match serving {
        Serving::Files { cert, key } => (cert.clone(), key.clone()),
        Serving::SelfSigned { dir, names } => ensure_self_signed(dir, names)?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in certs(ca)? {
                roots.add(c).map_err(|source| TlsError::ClientCa {
                    path: ca.into(),
                    source,
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()?;
            builder.with_client_cert_verifier(verifier)
        }
        // No CA: no client can authenticate by certificate.
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs(&cert_path)?, key(&key_path)?)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_pair_is_made_once_and_loads() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let d = tempfile::tempdir().unwrap();
        let names = vec!["node-1".to_string(), "192.168.250.11".to_string()];
        let (c, k) = ensure_self_signed(d.path(), &names).unwrap();
        let first = std::fs::read(&c).unwrap();
        ensure_self_signed(d.path(), &names).unwrap();
        assert_eq!(std::fs::read(&c).unwrap(), first, "kept across restarts");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&k).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let cfg = server_config(
            &Serving::SelfSigned {
                dir: d.path().into(),
                names,
            },
            None,
        );
        assert!(cfg.is_ok(), "{:?}", cfg.err());
    }
}
