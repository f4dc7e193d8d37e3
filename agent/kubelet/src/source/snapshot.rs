//! What a pod source publishes (`Snapshot`) and the ConfigMaps and
//! Secrets pods may reference (`ObjectStore`). Data only; never watches.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};

use crate::pod::env::Objects;

/// Every pod the source wants on this node, keyed by UID.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub pods: HashMap<String, Arc<Pod>>,
}

/// ConfigMaps and Secrets by (namespace, name), shared with pod workers.
#[derive(Clone, Default)]
pub struct ObjectStore {
    config_maps: Arc<RwLock<HashMap<(String, String), ConfigMap>>>,
    secrets: Arc<RwLock<HashMap<(String, String), Secret>>>,
}

fn key(ns: Option<&String>, name: Option<&String>) -> (String, String) {
    (
        ns.cloned().unwrap_or_else(|| "default".into()),
        name.cloned().unwrap_or_default(),
    )
}

impl ObjectStore {
    pub fn replace(&self, cms: Vec<ConfigMap>, secrets: Vec<Secret>) {
        let cms = cms
            .into_iter()
            .map(|c| {
                (
                    key(c.metadata.namespace.as_ref(), c.metadata.name.as_ref()),
                    c,
                )
            })
            .collect();
        let secrets = secrets
            .into_iter()
            .map(|s| {
                (
                    key(s.metadata.namespace.as_ref(), s.metadata.name.as_ref()),
                    s,
                )
            })
            .collect();
        if let Ok(mut g) = self.config_maps.write() {
            *g = cms;
        }
        if let Ok(mut g) = self.secrets.write() {
            *g = secrets;
        }
    }
}

impl Objects for ObjectStore {
    fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap> {
        self.config_maps
            .read()
            .ok()?
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }
    fn secret(&self, namespace: &str, name: &str) -> Option<Secret> {
        self.secrets
            .read()
            .ok()?
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }
}
