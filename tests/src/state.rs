//! What a lab made, written to `<lab dir>/state.json` before it is made, so
//! that teardown (now, or by a later run after a crash) knows every
//! namespace, process and path to remove.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::daemon::DaemonSpec;
use crate::LabError;

pub use crate::lab_dir::base_dir;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeState {
    pub name: String,
    pub netns: String,
    pub ip: Ipv4Addr,
    pub dir: PathBuf,
    /// The node's mount namespace file (`mntns.rs`); None in the state of
    /// a lab made before nodes had one.
    #[serde(default)]
    pub mntns: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DaemonRecord {
    /// Node name, or "lab" for daemons in the underlay namespace.
    pub place: String,
    pub spec: DaemonSpec,
    pub pid: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LabState {
    pub prefix: String,
    pub dir: PathBuf,
    /// Persistent labs (the local cluster) outlive their creator and are
    /// only removed by an explicit `down`.
    pub persistent: bool,
    /// (pid, start time) of the process that owns a non-persistent lab.
    pub owner: Option<(u32, u64)>,
    pub underlay_netns: String,
    pub underlay_ip: Ipv4Addr,
    pub nodes: Vec<NodeState>,
    pub daemons: Vec<DaemonRecord>,
    /// cgroup path (below every hierarchy) holding the lab's containers.
    pub cgroup_root: String,
}

impl LabState {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("state.json")
    }

    pub fn save(&self) -> Result<(), LabError> {
        let path = Self::path(&self.dir);
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(self).map_err(|e| LabError::State {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        std::fs::write(&tmp, text).map_err(LabError::io(format!("write {}", tmp.display())))?;
        std::fs::rename(&tmp, &path).map_err(LabError::io(format!("write {}", path.display())))
    }

    pub fn load(dir: &Path) -> Result<Self, LabError> {
        let path = Self::path(dir);
        let text =
            std::fs::read(&path).map_err(LabError::io(format!("read {}", path.display())))?;
        serde_json::from_slice(&text).map_err(|e| LabError::State {
            path,
            detail: e.to_string(),
        })
    }

    pub fn node(&self, name: &str) -> Result<&NodeState, LabError> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| LabError::NoNode(name.to_string()))
    }
}
