//! Namespace lifecycle: a Terminating namespace (deletionTimestamp set,
//! `kubernetes` finalizer pending) is asked to finish by deleting it again;
//! the API server then deletes what is left inside and removes the
//! namespace once nothing is. It never deletes a namespace not already
//! being deleted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams};

/// How often one Terminating namespace is retried.
pub const RETRY: Duration = Duration::from_millis(500);

/// The Terminating namespaces due for another attempt.
pub fn due(
    namespaces: &[Arc<Namespace>],
    last: &HashMap<String, Instant>,
    now: Instant,
) -> Vec<String> {
    namespaces
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_some())
        .filter_map(|n| n.metadata.name.clone())
        .filter(|name| {
            last.get(name)
                .is_none_or(|t| now.duration_since(*t) >= RETRY)
        })
        .collect()
}

/// Retries the due namespaces; returns how many are still Terminating
/// (so the loop comes back soon).
pub async fn pass(
    client: &kube::Client,
    namespaces: &[Arc<Namespace>],
    last: &mut HashMap<String, Instant>,
) -> usize {
    let now = Instant::now();
    last.retain(|name, _| {
        namespaces
            .iter()
            .any(|n| n.metadata.name.as_deref() == Some(name.as_str()))
    });
    let waiting = namespaces
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_some())
        .count();
    let api: Api<Namespace> = Api::all(client.clone());
    let mut left = waiting;
    for name in due(namespaces, last, now) {
        last.insert(name.clone(), now);
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(either) if either.is_right() => {
                tracing::info!(namespace = %name, "namespace finished terminating");
                left = left.saturating_sub(1);
            }
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => left = left.saturating_sub(1),
            Err(e) => tracing::info!(namespace = %name, error = %e, "namespace retry failed"),
        }
    }
    left
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn ns(name: &str, terminating: bool) -> Arc<Namespace> {
        Arc::new(Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                deletion_timestamp: terminating.then(|| Time(k8s_openapi::jiff::Timestamp::now())),
                ..Default::default()
            },
            ..Default::default()
        })
    }

    #[test]
    fn only_terminating_namespaces_and_not_too_often() {
        let now = Instant::now();
        let all = [ns("a", true), ns("b", false), ns("c", true)];
        let mut last = HashMap::new();
        assert_eq!(due(&all, &last, now), vec!["a", "c"]);
        last.insert("a".to_string(), now);
        assert_eq!(due(&all, &last, now), vec!["c"]);
        assert_eq!(due(&all, &last, now + RETRY), vec!["a", "c"]);
    }
}
