//! What the pod worker reads from the pod object: its name for logs, its
//! restart policy, its grace period, whether it is being deleted. Pure.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

pub(super) fn name_of(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

pub(super) fn restart_policy(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_else(|| "Always".into())
}

pub(super) fn grace(pod: &Pod) -> Duration {
    Duration::from_secs(
        pod.metadata
            .deletion_grace_period_seconds
            .or_else(|| {
                pod.spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30)
            .max(0) as u64,
    )
}

pub(super) fn deleting(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}
