//! The agent API's TLS: the serving certificate from files, else a
//! self-signed one made once and kept under the kubelet's root directory
//! (as kubelet does), and client certificates verified against the client
//! CA but not required, so a request without one is answered 401 instead
//! of failing the handshake; ALPN stays HTTP/1.1. PEM loading and the
//! exclusive key write are `capstan_serve`'s. Never reads the CA's key; it
//! has none.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use capstan_serve::files::write_new;
use rustls::ServerConfig;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading the PEM files (certificates, key, client CA).
    #[error(transparent)]
    Files(#[from] capstan_serve::tls::TlsError),
    #[error("make self-signed certificate: {0}")]
    SelfSign(#[from] rcgen::Error),
    #[error("write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    WriteNew(#[from] capstan_serve::files::FileError),
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

/// The self-signed pair in `dir` (`kubelet.crt`, `kubelet.key`), made if
/// either is missing; the key is created mode 0600.
pub fn ensure_self_signed(dir: &Path, names: &[String]) -> Result<(PathBuf, PathBuf), TlsError> {
    let (cert, key) = (dir.join("kubelet.crt"), dir.join("kubelet.key"));
    if cert.is_file() && key.is_file() {
        return Ok((cert, key));
    }
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
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
        path: dir.into(),
        source,
    })?;
    // A pair with one half missing is made again whole; the files are
    // created exclusively with their mode (the key never readable by
    // others). Key first: a crash in between leaves no certificate
    // without its key.
    for stale in [&key, &cert] {
        let _ = std::fs::remove_file(stale);
    }
    write_new(&key, pair.serialize_pem().as_bytes(), 0o600)?;
    write_new(&cert, c.pem().as_bytes(), 0o644)?;
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
    Ok(capstan_serve::tls::server_config_alpn(
        &cert_path,
        &key_path,
        client_ca,
        &[b"http/1.1"],
    )?)
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
