//! Events the eviction manager records, as kubelet does: `Evicted` on the
//! pod, `EvictionThresholdMet` on the Node. Built here, sent through the
//! kubelet's recorder (so a threshold met round after round is one Event
//! with a count); never blocks eviction.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};

const COMPONENT: &str = "kubelet";

fn event(
    involved: ObjectReference,
    namespace: &str,
    reason: &str,
    message: &str,
    node: &str,
    now: Timestamp,
) -> Event {
    let name = involved.name.clone().unwrap_or_default();
    Event {
        metadata: ObjectMeta {
            // client-go's `<object>.<hex nanos>`.
            name: Some(format!("{name}.{:x}", now.as_nanosecond())),
            namespace: Some(namespace.to_string()),
            ..Default::default()
        },
        involved_object: involved,
        reason: Some(reason.into()),
        message: Some(message.into()),
        type_: Some("Warning".into()),
        source: Some(EventSource {
            component: Some(COMPONENT.into()),
            host: Some(node.into()),
        }),
        reporting_component: Some(COMPONENT.into()),
        reporting_instance: Some(node.into()),
        action: Some("Evicting".into()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        count: Some(1),
        ..Default::default()
    }
}

/// The pod's `Evicted` Warning Event, message as in its status.
pub fn pod_evicted(pod: &Pod, message: &str, node: &str, now: Timestamp) -> Event {
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let involved = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: pod.metadata.name.clone(),
        namespace: Some(ns.clone()),
        uid: pod.metadata.uid.clone(),
        resource_version: pod.metadata.resource_version.clone(),
        ..Default::default()
    };
    event(involved, &ns, "Evicted", message, node, now)
}

/// The Node's `EvictionThresholdMet` Warning Event ("Attempting to reclaim
/// memory"); Node events live in the default namespace.
pub fn threshold_met(node: &str, resource: &str, now: Timestamp) -> Event {
    let involved = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: Some(node.into()),
        uid: Some(node.into()),
        ..Default::default()
    };
    event(
        involved,
        "default",
        "EvictionThresholdMet",
        &format!("Attempting to reclaim {resource}"),
        node,
        now,
    )
}
