//! Tells users why a pod waits: the `PodScheduled=False` condition on the
//! pod and a `FailedScheduling` Warning Event, as kube-scheduler does.
//! Fire-and-forget: a failed report never blocks scheduling.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};

use super::name::DEFAULT_SCHEDULER_NAME;

pub struct Reporter {
    client: kube::Client,
}

impl Reporter {
    pub fn new(client: kube::Client) -> Self {
        Reporter { client }
    }

    pub fn unschedulable(&self, pod: Arc<Pod>, message: String) {
        let client = self.client.clone();
        tokio::spawn(async move {
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            let now = k8s_openapi::jiff::Timestamp::now();
            let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let patch = serde_json::json!({
                "status": {
                    "conditions": [{
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": message,
                        "lastTransitionTime": Time(now),
                    }]
                }
            });
            if let Err(e) = pods
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                tracing::debug!(pod = %name, error = %e, "could not set PodScheduled=False");
            }
            let event = Event {
                metadata: ObjectMeta {
                    name: Some(format!("{name}.{:016x}", rand::random::<u64>())),
                    namespace: Some(ns.clone()),
                    ..Default::default()
                },
                involved_object: ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: Some(name.clone()),
                    namespace: Some(ns.clone()),
                    uid: pod.metadata.uid.clone(),
                    resource_version: pod.metadata.resource_version.clone(),
                    ..Default::default()
                },
                reason: Some("FailedScheduling".into()),
                message: Some(message),
                type_: Some("Warning".into()),
                source: Some(EventSource {
                    component: Some(DEFAULT_SCHEDULER_NAME.into()),
                    host: None,
                }),
                reporting_component: Some(DEFAULT_SCHEDULER_NAME.into()),
                reporting_instance: Some(DEFAULT_SCHEDULER_NAME.into()),
                action: Some("Scheduling".into()),
                first_timestamp: Some(Time(now)),
                last_timestamp: Some(Time(now)),
                event_time: Some(MicroTime(now)),
                count: Some(1),
                ..Default::default()
            };
            let events: Api<Event> = Api::namespaced(client, &ns);
            if let Err(e) = events.create(&PostParams::default(), &event).await {
                tracing::debug!(pod = %name, error = %e, "could not record FailedScheduling event");
            }
        });
    }
}
