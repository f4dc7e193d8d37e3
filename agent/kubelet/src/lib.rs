//! capstan-kubelet: runs the pods a pod source assigns to this node on
//! containerd, with CNI networking, registers the node and serves the
//! agent API. `manager` keeps one `pod_worker` per pod; workers talk to
//! containerd only through `runtime::ContainerRuntime`. Never writes
//! anything outside its flags' directories and its cgroup root. This file
//! is an index: modules import each other by their own paths, not by the
//! re-exports here (which are for the agent's wiring).

pub mod admission;
pub mod error;
pub mod events;
pub mod eviction;
pub mod gc;
pub mod ids;
pub mod logs;
pub mod manager;
pub mod node;
pub mod options;
pub mod paths;
pub mod pod;
pub mod pod_worker;
pub mod probes;
pub mod run;
pub mod runtime;
pub mod sandbox;
pub mod server;
pub mod shared;
pub mod source;
pub mod status;
pub mod token;

pub use options::{
    Options, DEFAULT_CGROUP_ROOT, DEFAULT_CNI_BIN_DIR, DEFAULT_CNI_CONF_DIR,
    DEFAULT_CONTAINERD_NAMESPACE, DEFAULT_CONTAINERD_SOCKET, DEFAULT_NETNS_DIR,
    DEFAULT_NETNS_PREFIX, DEFAULT_POD_LOG_DIR, DEFAULT_ROOT_DIR,
};
pub use run::{run, RunError};
