//! What every pod worker shares (the runtime client, CNI, the object
//! store, the API client) and where a pod's status record lives. Holds
//! handles only; never starts anything.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use crate::options::Options;
use crate::sandbox::cni;
use crate::source::services::ServiceStore;
use crate::source::snapshot::ObjectStore;
use crate::status::api;

/// What every pod worker shares: the one runtime client, CNI, objects.
pub struct Shared<R> {
    pub runtime: Arc<R>,
    pub cni: cni::Cni,
    pub objects: ObjectStore,
    pub opts: Arc<Options>,
    pub owner: String,
    pub host_ip: Option<IpAddr>,
    /// Present when an API source runs: status patches, final deletes.
    pub api: Option<api::PodApi>,
    /// Every Service, for containers' Service variables (with the API).
    pub services: Option<ServiceStore>,
}

impl<R> Shared<R> {
    /// `<root>/pod-status/<namespace>_<name>.json`: the pod's computed
    /// status, for static pods (and tests, and `capstan-lab`).
    pub fn status_path(&self, pod: &Pod) -> PathBuf {
        crate::paths::status_path(
            &self.opts.root_dir,
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            pod.metadata.name.as_deref().unwrap_or(""),
        )
    }
}
