//! Events the eviction manager records through the API, as kubelet does:
//! `Evicted` on the pod, `EvictionThresholdMet` on the Node. Fire and
//! forget: a failed Event is logged, never retried, never blocks eviction.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, PostParams};

const COMPONENT: &str = "kubelet";

fn event(
    involved: ObjectReference,
    namespace: &str,
    reason: &str,
    message: &str,
    node: &str,
) -> Event {
    let now = k8s_openapi::jiff::Timestamp::now();
    let name = involved.name.clone().unwrap_or_default();
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{:016x}", rand::random::<u64>())),
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
pub async fn pod_evicted(client: &kube::Client, pod: &Pod, message: &str, node: &str) {
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
    let ev = event(involved, &ns, "Evicted", message, node);
    let api: Api<Event> = Api::namespaced(client.clone(), &ns);
    if let Err(e) = api.create(&PostParams::default(), &ev).await {
        tracing::warn!(pod = ?pod.metadata.name, error = %e, "could not record Evicted event");
    }
}

/// The Node's `EvictionThresholdMet` Warning Event ("Attempting to reclaim
/// memory"); Node events live in the default namespace.
pub async fn threshold_met(client: &kube::Client, node: &str, resource: &str) {
    let involved = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: Some(node.into()),
        uid: Some(node.into()),
        ..Default::default()
    };
    let ev = event(
        involved,
        "default",
        "EvictionThresholdMet",
        &format!("Attempting to reclaim {resource}"),
        node,
    );
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    if let Err(e) = api.create(&PostParams::default(), &ev).await {
        tracing::warn!(node, error = %e, "could not record EvictionThresholdMet event");
    }
}
