//! The agent API server's settings (address, serving certificate, client
//! CA, the kubelet's directories it reads) and its start-up error. Plain
//! data; never binds anything.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::server::tls;

pub const DEFAULT_PORT: u16 = 10250;

#[derive(Clone, Debug)]
pub struct Options {
    pub addr: SocketAddr,
    pub serving: tls::Serving,
    /// CA of client certificates (the cluster CA); without it every
    /// request but `/healthz` is refused.
    pub client_ca: Option<PathBuf>,
    /// The kubelet's status records (`<root>/pod-status`).
    pub root_dir: PathBuf,
    pub pod_log_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}
