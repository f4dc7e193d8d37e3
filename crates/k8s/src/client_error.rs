//! Why a client could not be configured or built: shared by the
//! kubeconfig path (`client`) and the in-cluster one (`in_cluster`).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig { path: PathBuf, message: String },
    #[error("no kubeconfig given and none found (in-cluster or $KUBECONFIG): {0}")]
    Infer(String),
    #[error("in-cluster config: {0}")]
    InCluster(String),
    #[error("bad API server address {0:?}")]
    Server(String),
    #[error("kube client: {0}")]
    Client(#[source] kube::Error),
}
