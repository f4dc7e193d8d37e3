//! The kube subnet manager (flannel's `--kube-subnet-mgr`).

mod annotations;
pub use annotations::*;
