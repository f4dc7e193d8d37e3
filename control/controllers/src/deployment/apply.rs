//! Carrying out a plan: create or scale the ReplicaSets, then write the
//! Deployment's status and revision when they changed. The only file here
//! that calls the API.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Api, Patch, PatchParams, PostParams};

use super::history::REVISION;
use super::plan::DeployPlan;
use super::status::status_differs;

/// Carries out `p` for `d`; returns how many calls failed.
pub async fn apply(client: &kube::Client, d: &Deployment, p: &DeployPlan) -> usize {
    let ns = d.metadata.namespace.clone().unwrap_or_default();
    let name = d.metadata.name.clone().unwrap_or_default();
    let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
    let mut failed = 0;
    if let Some(rs) = &p.create {
        match rs_api.create(&PostParams::default(), rs).await {
            Ok(_) => {
                tracing::info!(deployment = %name, replicaset = ?rs.metadata.name, "created replicaset")
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => {
                tracing::info!(deployment = %name, error = %e, "creating replicaset failed");
                failed += 1;
            }
        }
    }
    for (rs, replicas, rev) in &p.scale {
        let mut patch = serde_json::json!({"spec": {"replicas": replicas}});
        if let Some(rev) = rev {
            patch["metadata"] = serde_json::json!({"annotations": {REVISION: rev.to_string()}});
        }
        if let Err(e) = rs_api
            .patch(rs, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::info!(deployment = %name, replicaset = %rs, error = %e, "scaling replicaset failed");
            failed += 1;
        } else {
            tracing::info!(deployment = %name, replicaset = %rs, replicas, "scaled replicaset");
        }
    }
    let dep_api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let current = serde_json::to_value(d.status.clone().unwrap_or_default()).unwrap_or_default();
    if status_differs(&current, &p.status) {
        if let Err(e) = dep_api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&serde_json::json!({"status": p.status})),
            )
            .await
        {
            tracing::info!(deployment = %name, error = %e, "updating status failed");
            failed += 1;
        }
    }
    let has_rev = d
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .map(String::as_str)
        == Some(p.revision.to_string().as_str());
    if !has_rev {
        let patch =
            serde_json::json!({"metadata": {"annotations": {REVISION: p.revision.to_string()}}});
        if let Err(e) = dep_api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::info!(deployment = %name, error = %e, "recording revision failed");
            failed += 1;
        }
    }
    failed
}
