//! Building the Event objects the kubelet reports (for a container, for a
//! pod). Pure; sending is `record`'s job.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};

pub const NORMAL: &str = "Normal";
pub const WARNING: &str = "Warning";

/// One event about `container` of `pod`, reported by kubelet on `node`.
pub fn build(
    pod: &Pod,
    container: &str,
    type_: &str,
    reason: &str,
    message: String,
    node: &str,
    now: Timestamp,
) -> Event {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    Event {
        metadata: ObjectMeta {
            // Unique per pod and instant, as kubelet's `<pod>.<hex nanos>`.
            name: Some(format!("{name}.{:x}", now.as_nanosecond())),
            namespace: Some(namespace.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(name),
            namespace: Some(namespace),
            uid: pod.metadata.uid.clone(),
            resource_version: pod.metadata.resource_version.clone(),
            field_path: Some(format!("spec.containers{{{container}}}")),
        },
        reason: Some(reason.into()),
        message: Some(message),
        type_: Some(type_.into()),
        source: Some(EventSource {
            component: Some("kubelet".into()),
            host: Some(node.into()),
        }),
        reporting_component: Some("kubelet".into()),
        reporting_instance: Some(node.into()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        count: Some(1),
        ..Default::default()
    }
}

/// One event about the pod itself (no container), e.g. an admission
/// refusal.
pub fn build_for_pod(
    pod: &Pod,
    type_: &str,
    reason: &str,
    message: String,
    node: &str,
    now: Timestamp,
) -> Event {
    let mut e = build(pod, "", type_, reason, message, node, now);
    e.involved_object.field_path = None;
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_pod_container_and_reporter() {
        let mut pod = Pod::default();
        pod.metadata.name = Some("web".into());
        pod.metadata.namespace = Some("apps".into());
        pod.metadata.uid = Some("u-1".into());
        let now = Timestamp::from_second(1_700_000_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let e = build(
            &pod,
            "main",
            WARNING,
            "Unhealthy",
            "Liveness probe failed: x".into(),
            "node-1",
            now,
        );
        assert_eq!(
            e.metadata.name.as_deref(),
            Some(format!("web.{:x}", now.as_nanosecond()).as_str())
        );
        assert_eq!(e.metadata.namespace.as_deref(), Some("apps"));
        let o = &e.involved_object;
        assert_eq!(
            (o.kind.as_deref(), o.name.as_deref(), o.uid.as_deref()),
            (Some("Pod"), Some("web"), Some("u-1"))
        );
        assert_eq!(o.field_path.as_deref(), Some("spec.containers{main}"));
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        assert_eq!(e.source.and_then(|s| s.host).as_deref(), Some("node-1"));
        assert_eq!(e.count, Some(1));
    }
}
