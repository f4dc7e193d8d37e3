//! What can go wrong making the cluster's credentials: each error names
//! the file or the input it is about.

use std::path::PathBuf;

use crate::kubeconfig;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("issue certificate {name}: {source}")]
    Issue { name: String, source: rcgen::Error },
    #[error("service-account key {}: {source}", path.display())]
    ServiceAccountKey { path: PathBuf, source: rcgen::Error },
    #[error("read CA from {}: {source}", dir.display())]
    LoadCa { dir: PathBuf, source: rcgen::Error },
    #[error("bad --server URL {0}: want https://HOST:PORT")]
    ServerUrl(String),
    #[error(
        "bad node name {0:?}: want a DNS-1123 subdomain (lower-case letters, digits, '-', '.')"
    )]
    NodeName(String),
    #[error("write kubeconfig {}: {source}", path.display())]
    Kubeconfig {
        path: PathBuf,
        source: kubeconfig::Error,
    },
    #[error("token file {}: {source}", path.display())]
    Tokens {
        path: PathBuf,
        source: crate::auth::token_file::Error,
    },
}

impl From<capstan_serve::files::FileError> for Error {
    fn from(e: capstan_serve::files::FileError) -> Self {
        Error::Io {
            what: e.what,
            path: e.path,
            source: e.source,
        }
    }
}
