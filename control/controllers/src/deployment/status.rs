//! The status `kubectl rollout status` reads: counts over the owned
//! ReplicaSets and the Available/Progressing conditions, and whether a
//! stored status differs enough to be written. Pure.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::replica_sets::status_of;

/// The Deployment's status after this step.
pub(super) fn rollout_status(
    d: &Deployment,
    owned: &[Arc<ReplicaSet>],
    new_rs: Option<&Arc<ReplicaSet>>,
    desired: i32,
    max_unavail: i32,
    new_name: &str,
    new_available: i32,
) -> serde_json::Value {
    let all_replicas: i32 = owned.iter().map(|r| status_of(r).0).sum();
    let ready: i32 = owned.iter().map(|r| status_of(r).1).sum();
    let available: i32 = owned.iter().map(|r| status_of(r).2).sum();
    let updated = new_rs.map(|n| status_of(n).0).unwrap_or(0);
    let complete = new_rs.is_some()
        && updated == desired
        && all_replicas == desired
        && new_available == desired;
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let conditions = vec![
        DeploymentCondition {
            type_: "Available".into(),
            status: if available >= desired - max_unavail {
                "True"
            } else {
                "False"
            }
            .into(),
            reason: Some(
                if available >= desired - max_unavail {
                    "MinimumReplicasAvailable"
                } else {
                    "MinimumReplicasUnavailable"
                }
                .into(),
            ),
            message: Some(if available >= desired - max_unavail {
                "Deployment has minimum availability.".to_string()
            } else {
                "Deployment does not have minimum availability.".to_string()
            }),
            last_transition_time: Some(now.clone()),
            last_update_time: Some(now.clone()),
        },
        DeploymentCondition {
            type_: "Progressing".into(),
            status: "True".into(),
            reason: Some(
                if complete {
                    "NewReplicaSetAvailable"
                } else {
                    "ReplicaSetUpdated"
                }
                .into(),
            ),
            message: Some(if complete {
                format!("ReplicaSet \"{new_name}\" has successfully progressed.")
            } else {
                format!("ReplicaSet \"{new_name}\" is progressing.")
            }),
            last_transition_time: Some(now.clone()),
            last_update_time: Some(now),
        },
    ];
    serde_json::json!({
        "observedGeneration": d.metadata.generation.unwrap_or(0),
        "replicas": all_replicas,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": available,
        "unavailableReplicas": (desired - available).max(0),
        "conditions": conditions,
    })
}

/// Compares the counts and condition reasons, not the timestamps (which
/// change on every plan and would make every pass a write).
pub(super) fn status_differs(current: &serde_json::Value, wanted: &serde_json::Value) -> bool {
    let num = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_i64()).unwrap_or(0);
    let conds = |v: &serde_json::Value| -> Vec<(String, String, String)> {
        v.get("conditions")
            .and_then(|c| c.as_array())
            .into_iter()
            .flatten()
            .map(|c| {
                let s = |k: &str| c.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
                (s("type"), s("status"), s("reason"))
            })
            .collect()
    };
    [
        "observedGeneration",
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
        "unavailableReplicas",
    ]
    .iter()
    .any(|k| num(current, k) != num(wanted, k))
        || conds(current) != conds(wanted)
}
