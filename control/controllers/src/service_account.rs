//! The serviceaccount controller: a `default` ServiceAccount in every
//! active namespace, made again when deleted (kube-controller-manager's
//! `serviceaccount` controller). Terminating namespaces are left alone:
//! the API server refuses new content there. Never touches other accounts.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};

/// The account every namespace has.
pub const DEFAULT: &str = "default";

/// Whether `ns` is one new content may go into.
pub fn active(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_none()
        && ns.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating")
}

/// The active namespaces whose `default` account is missing, given a
/// lookup of the stored accounts.
pub fn plan(namespaces: &[Arc<Namespace>], has: impl Fn(&str) -> bool) -> Vec<String> {
    namespaces
        .iter()
        .filter(|n| active(n))
        .filter_map(|n| n.metadata.name.clone())
        .filter(|n| !has(n))
        .collect()
}

/// Makes the missing accounts; returns how many creates failed.
pub async fn pass(
    client: &kube::Client,
    namespaces: &[Arc<Namespace>],
    accounts: &Store<ServiceAccount>,
) -> usize {
    let missing = plan(namespaces, |ns| {
        accounts.get(&ObjectRef::new(DEFAULT).within(ns)).is_some()
    });
    let mut failed = 0;
    for ns in missing {
        let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(DEFAULT.into()),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        match api.create(&PostParams::default(), &sa).await {
            Ok(_) => tracing::info!(namespace = %ns, "created the default service account"),
            // Made meanwhile (by the namespace's create), or the namespace
            // went or is terminating: nothing to retry.
            Err(kube::Error::Api(e)) if matches!(e.code, 409 | 404 | 403) => {}
            Err(e) => {
                tracing::info!(namespace = %ns, error = %e, "creating the default service account failed");
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
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ns(name: &str, phase: &str, deleting: bool) -> Arc<Namespace> {
        Arc::new(Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                deletion_timestamp: deleting.then(|| Time(k8s_openapi::jiff::Timestamp::now())),
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
    fn only_active_namespaces_without_one_get_an_account() {
        let all = [
            ns("a", "Active", false),
            ns("b", "Active", false),
            ns("c", "Terminating", true),
            ns("d", "Active", true),
        ];
        assert_eq!(plan(&all, |n| n == "b"), vec!["a"]);
        assert!(plan(&all, |_| true).is_empty());
    }
}
