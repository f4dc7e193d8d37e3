//! Every Service in the cluster, in a reflector store (a node may list and
//! watch Services, as kubelet's service informer does), for the Service
//! environment variables of containers started from now on. A container
//! that started before a Service existed does not get it (kubelet's
//! behaviour: env is fixed at container start). Never writes.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::FutureExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::sync::Notify;

use crate::pod::service_env;

#[derive(Clone)]
pub struct ServiceStore {
    store: Store<Service>,
}

impl ServiceStore {
    /// Starts the watch; the store fills in the background.
    pub fn spawn(client: Client) -> Self {
        let store = capstan_k8s::spawn_reflector(
            Api::<Service>::all(client),
            watcher::Config::default(),
            Arc::new(Notify::new()),
        );
        ServiceStore { store }
    }

    /// Whether the first complete list has arrived.
    pub fn ready(&self) -> bool {
        self.store
            .wait_until_ready()
            .now_or_never()
            .is_some_and(|r| r.is_ok())
    }

    /// The Service variables for a container of `pod` started now. A pod
    /// from the API waits (an error, retried) until Services were listed
    /// once, as kubelet does, so no pod misses KUBERNETES_SERVICE_HOST
    /// because it started first.
    pub fn env_for(&self, pod: &Pod, from_api: bool) -> Result<BTreeMap<String, String>, String> {
        if from_api && !self.ready() {
            return Err(
                "services have not yet been read at least once, cannot construct envvars".into(),
            );
        }
        let services = self.store.state();
        Ok(service_env::service_env(
            services.iter().map(|s| s.as_ref()),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            service_env::links_enabled(pod),
        ))
    }
}
