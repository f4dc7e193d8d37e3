//! Where the kubelet keeps what others read: pod status records and CRI
//! log files. Names only, a leaf both the kubelet and its server use; never
//! touches the filesystem.

use std::path::{Path, PathBuf};

/// `<root>/pod-status/<namespace>_<name>.json`: the pod's computed
/// status, for static pods (and tests, and `capstan-lab`).
pub fn status_path(root: &Path, namespace: &str, name: &str) -> PathBuf {
    root.join("pod-status")
        .join(format!("{namespace}_{name}.json"))
}

/// `<log dir>/<ns>_<name>_<uid>`: one pod's log directory.
pub fn pod_log_dir(log_dir: &Path, namespace: &str, name: &str, uid: &str) -> PathBuf {
    log_dir.join(format!("{namespace}_{name}_{uid}"))
}

/// `<pod log dir>/<container>/<restart>.log`: one attempt's log file.
pub fn container_log_path(pod_dir: &Path, container: &str, restart: u32) -> PathBuf {
    pod_dir.join(container).join(format!("{restart}.log"))
}
