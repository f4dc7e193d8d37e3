//! The root CA publisher: a ConfigMap `kube-root-ca.crt` whose `ca.crt` is
//! the cluster CA (PEM) in every active namespace, put back when deleted
//! or edited (kube-controller-manager's `root-ca-cert-publisher`). Pods
//! read it through their `kube-api-access-*` volume to trust the API
//! server. Never touches another ConfigMap.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::service_account::active;

pub const NAME: &str = "kube-root-ca.crt";
pub const KEY: &str = "ca.crt";
pub const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
/// Kubernetes' own words for what the ConfigMap is for.
pub const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// What one namespace needs.
#[derive(Debug, PartialEq)]
pub enum Change {
    Create {
        namespace: String,
    },
    /// The stored one (its data or description is not ours).
    Restore {
        stored: Arc<ConfigMap>,
    },
}

fn data(ca: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(KEY.to_string(), ca.to_string())])
}

fn is_current(cm: &ConfigMap, ca: &str) -> bool {
    cm.data.as_ref() == Some(&data(ca))
        && cm
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DESCRIPTION_ANNOTATION))
            .is_some_and(|d| !d.is_empty())
}

/// The changes that make every active namespace's ConfigMap hold `ca`.
pub fn plan(
    namespaces: &[Arc<Namespace>],
    stored: impl Fn(&str) -> Option<Arc<ConfigMap>>,
    ca: &str,
) -> Vec<Change> {
    let mut out = Vec::new();
    for ns in namespaces.iter().filter(|n| active(n)) {
        let Some(name) = ns.metadata.name.clone() else {
            continue;
        };
        match stored(&name) {
            None => out.push(Change::Create { namespace: name }),
            Some(cm) if cm.metadata.deletion_timestamp.is_none() && !is_current(&cm, ca) => {
                out.push(Change::Restore { stored: cm })
            }
            Some(_) => {}
        }
    }
    out
}

/// The ConfigMap as it should be, keeping what else the stored one has.
pub fn desired(namespace: &str, stored: Option<&ConfigMap>, ca: &str) -> ConfigMap {
    let mut cm = stored.cloned().unwrap_or_else(|| ConfigMap {
        metadata: ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        ..Default::default()
    });
    cm.data = Some(data(ca));
    cm.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(DESCRIPTION_ANNOTATION.into(), DESCRIPTION.into());
    cm
}

/// Applies the plan; returns how many writes failed.
pub async fn pass(
    client: &kube::Client,
    namespaces: &[Arc<Namespace>],
    config_maps: &Store<ConfigMap>,
    ca: &str,
) -> usize {
    let changes = plan(
        namespaces,
        |ns| config_maps.get(&ObjectRef::new(NAME).within(ns)),
        ca,
    );
    let mut failed = 0;
    for change in changes {
        let (ns, result) = match change {
            Change::Create { namespace } => {
                let api: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
                let r = api
                    .create(&PostParams::default(), &desired(&namespace, None, ca))
                    .await
                    .map(|_| ());
                (namespace, r)
            }
            Change::Restore { stored } => {
                let namespace = stored.metadata.namespace.clone().unwrap_or_default();
                let api: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
                let r = api
                    .replace(
                        NAME,
                        &PostParams::default(),
                        &desired(&namespace, Some(&stored), ca),
                    )
                    .await
                    .map(|_| ());
                (namespace, r)
            }
        };
        match result {
            Ok(()) => tracing::info!(namespace = %ns, "published the root CA"),
            // The namespace went or is terminating, or the store is behind
            // (409): the next pass sees the truth.
            Err(kube::Error::Api(e)) if matches!(e.code, 404 | 403) => {}
            Err(e) => {
                tracing::info!(namespace = %ns, error = %e, "publishing the root CA failed");
                failed += 1;
            }
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NamespaceStatus;

    fn ns(name: &str, phase: &str) -> Arc<Namespace> {
        Arc::new(Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            status: Some(NamespaceStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    #[test]
    fn missing_edited_and_current_config_maps() {
        let ca = "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n";
        let current = Arc::new(desired("ok", None, ca));
        let mut edited = desired("edited", None, ca);
        edited.data = Some(BTreeMap::from([(KEY.to_string(), "bogus".to_string())]));
        let edited = Arc::new(edited);
        let mut undescribed = desired("bare", None, ca);
        undescribed.metadata.annotations = None;
        let undescribed = Arc::new(undescribed);
        let all = [
            ns("ok", "Active"),
            ns("edited", "Active"),
            ns("bare", "Active"),
            ns("new", "Active"),
            ns("going", "Terminating"),
        ];
        let stored = |n: &str| match n {
            "ok" => Some(current.clone()),
            "edited" => Some(edited.clone()),
            "bare" => Some(undescribed.clone()),
            _ => None,
        };
        let changes = plan(&all, stored, ca);
        assert_eq!(
            changes,
            vec![
                Change::Restore {
                    stored: edited.clone()
                },
                Change::Restore {
                    stored: undescribed.clone()
                },
                Change::Create {
                    namespace: "new".into()
                },
            ]
        );
        let fixed = desired("edited", Some(&edited), ca);
        assert_eq!(fixed.data, Some(data(ca)));
        assert_eq!(fixed.metadata.name.as_deref(), Some(NAME));
    }
}
