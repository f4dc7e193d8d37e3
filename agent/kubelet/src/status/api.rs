//! What the kubelet writes to the API for pods it got from the API: their
//! status (merge patch of `pods/status`), the final delete (grace 0, UID
//! precondition) once a deleted pod's containers are gone, and reads of the
//! ConfigMaps and Secrets a pod references. Never watches.

use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodStatus, Secret};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, Client};

use crate::error::{Error, Result};
use crate::source::snapshot::ObjectStore;

#[derive(Clone)]
pub struct PodApi {
    pub client: Client,
    /// The one Event recorder of this kubelet: correlation needs every
    /// Event to pass through the same cache.
    pub events: crate::events::record::Recorder,
}

fn fail(pod: &Pod, e: kube::Error) -> Error {
    Error::Config {
        pod: pod.metadata.name.clone().unwrap_or_default(),
        message: format!("API: {e}"),
    }
}

/// Pods the static source made carry `kubernetes.io/config.source: file`.
pub fn from_api(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("kubernetes.io/config.source"))
        .is_none_or(|s| s == "api")
}

impl PodApi {
    fn pods(&self, pod: &Pod) -> Api<Pod> {
        Api::namespaced(
            self.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        )
    }

    pub async fn patch_status(&self, pod: &Pod, status: &PodStatus) -> Result<()> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let body = serde_json::json!({ "status": status });
        self.pods(pod)
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
            .await
            .map_err(|e| fail(pod, e))?;
        Ok(())
    }

    /// The last step of graceful deletion: the object goes.
    pub async fn delete_final(&self, pod: &Pod) -> Result<()> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match self.pods(pod).delete(&name, &dp).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(e) => Err(fail(pod, e)),
        }
    }

    /// The ConfigMaps and Secrets the pod names (env and volumes), read now.
    pub async fn objects_for(&self, pod: &Pod) -> Result<ObjectStore> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let spec = pod.spec.clone().unwrap_or_default();
        let mut cms: Vec<String> = Vec::new();
        let mut secrets: Vec<String> = Vec::new();
        for c in spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
        {
            for e in c.env.iter().flatten() {
                if let Some(v) = &e.value_from {
                    if let Some(r) = &v.config_map_key_ref {
                        cms.push(r.name.clone());
                    }
                    if let Some(r) = &v.secret_key_ref {
                        secrets.push(r.name.clone());
                    }
                }
            }
            for f in c.env_from.iter().flatten() {
                if let Some(r) = &f.config_map_ref {
                    cms.push(r.name.clone());
                }
                if let Some(r) = &f.secret_ref {
                    secrets.push(r.name.clone());
                }
            }
        }
        for r in spec.image_pull_secrets.iter().flatten() {
            secrets.push(r.name.clone());
        }
        for v in spec.volumes.iter().flatten() {
            if let Some(c) = &v.config_map {
                cms.push(c.name.clone());
            }
            if let Some(s) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
                secrets.push(s);
            }
            for p in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
                if let Some(c) = &p.config_map {
                    cms.push(c.name.clone());
                }
                if let Some(s) = &p.secret {
                    secrets.push(s.name.clone());
                }
            }
        }
        cms.sort();
        cms.dedup();
        secrets.sort();
        secrets.dedup();
        let cm_api: Api<ConfigMap> = Api::namespaced(self.client.clone(), ns);
        let s_api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let mut found_cms = Vec::new();
        for n in cms {
            if let Some(c) = cm_api.get_opt(&n).await.map_err(|e| fail(pod, e))? {
                found_cms.push(c);
            }
        }
        let mut found_secrets = Vec::new();
        for n in secrets {
            if let Some(s) = s_api.get_opt(&n).await.map_err(|e| fail(pod, e))? {
                found_secrets.push(s);
            }
        }
        let store = ObjectStore::default();
        store.replace(found_cms, found_secrets);
        Ok(store)
    }
}
