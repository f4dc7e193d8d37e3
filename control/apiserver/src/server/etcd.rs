//! The etcd connection the API server stores into: plain, or TLS with the
//! given CA (and client certificate) when etcd requires it. Only connects;
//! what is stored where belongs to the API server.

use std::path::{Path, PathBuf};
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--etcd-certfile and --etcd-keyfile go together")]
    HalfIdentity,
    #[error("TLS options given but endpoint {0} is not https://")]
    PlainEndpoint(String),
    #[error("connect to etcd at {endpoints}: {source}")]
    Connect {
        endpoints: String,
        source: etcd_client::Error,
    },
}

#[derive(Clone, Debug, Default)]
pub struct EtcdTls {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl EtcdTls {
    fn is_set(&self) -> bool {
        self.ca.is_some() || self.cert.is_some() || self.key.is_some()
    }

    fn options(&self) -> Result<Option<TlsOptions>, Error> {
        if !self.is_set() {
            return Ok(None);
        }
        let mut tls = TlsOptions::new();
        if let Some(ca) = &self.ca {
            tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        match (&self.cert, &self.key) {
            (Some(c), Some(k)) => tls = tls.identity(Identity::from_pem(read(c)?, read(k)?)),
            (None, None) => {}
            _ => return Err(Error::HalfIdentity),
        }
        Ok(Some(tls))
    }
}

pub async fn connect(endpoints: &[String], tls: &EtcdTls) -> Result<Client, Error> {
    let mut opts = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
    if let Some(t) = tls.options()? {
        if let Some(e) = endpoints.iter().find(|e| !e.starts_with("https://")) {
            return Err(Error::PlainEndpoint(e.clone()));
        }
        opts = opts.with_tls(t);
    }
    Client::connect(endpoints, Some(opts))
        .await
        .map_err(|source| Error::Connect {
            endpoints: endpoints.join(","),
            source,
        })
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}
