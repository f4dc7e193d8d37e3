//! The kubelet's error type: one variant per operation, carrying what it
//! acted on. Never used for control flow inside a pod worker's happy path.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("containerd {op} {id}: {message}")]
    Containerd {
        op: &'static str,
        id: String,
        message: String,
    },
    #[error("connect to containerd at {path}: {message}")]
    Connect { path: PathBuf, message: String },
    #[error("image {image}: {message}")]
    Image { image: String, message: String },
    /// kubelet's `InvalidImageName`: the reference does not parse.
    #[error("{message}")]
    InvalidImage { message: String },
    #[error("Back-off pulling image \"{image}\": {last}")]
    PullBackOff { image: String, last: String },
    #[error("CNI {op} for {sandbox}: {message}")]
    Cni {
        op: &'static str,
        sandbox: String,
        message: String,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("namespace {op} {path}: {source}")]
    Namespace {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("pod {pod}: {message}")]
    Config { pod: String, message: String },
    /// A volume's files could not be made (kubelet's FailedMount).
    #[error("MountVolume.SetUp failed for volume {volume:?} : {message}")]
    Mount {
        pod: String,
        volume: String,
        message: String,
    },
}

impl Error {
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
