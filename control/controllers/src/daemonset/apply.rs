//! Carries out one DaemonSet's plan: creates and deletes its pods
//! (remembering them in its expectations until the watch shows them) and
//! patches the status where it differs. Returns how many calls failed.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};

use super::expectations::Expectations;
use super::plan::DsPlan;
use super::pod::daemon_pod;

pub async fn apply(
    client: &kube::Client,
    ds: &DaemonSet,
    p: &DsPlan,
    expect: &mut Expectations,
) -> usize {
    let ns = ds.metadata.namespace.clone().unwrap_or_default();
    let name = ds.metadata.name.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut failed = 0;
    for node in &p.create_on {
        let Some(pod) = daemon_pod(ds, node) else {
            continue;
        };
        match pods.create(&PostParams::default(), &pod).await {
            Ok(made) => {
                tracing::info!(daemonset = %name, node = %node, "created daemon pod");
                expect.created(made);
            }
            Err(e) => {
                tracing::info!(daemonset = %name, node = %node, error = %e, "creating daemon pod failed");
                failed += 1;
            }
        }
    }
    for pod in &p.delete {
        let pname = pod.metadata.name.clone().unwrap_or_default();
        match pods.delete(&pname, &DeleteParams::default()).await {
            Ok(_) => {
                tracing::info!(daemonset = %name, pod = %pname, "deleted daemon pod");
                if let Some(uid) = pod.metadata.uid.as_deref() {
                    expect.deleted(uid);
                }
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                tracing::info!(daemonset = %name, pod = %pname, error = %e, "deleting daemon pod failed");
                failed += 1;
            }
        }
    }
    let current = serde_json::to_value(ds.status.clone().unwrap_or_default()).unwrap_or_default();
    let differs = p.status.as_object().into_iter().flatten().any(|(k, v)| {
        current.get(k).and_then(|x| x.as_i64()).unwrap_or(0) != v.as_i64().unwrap_or(0)
    });
    if differs {
        let api: Api<DaemonSet> = Api::namespaced(client.clone(), &ns);
        if let Err(e) = api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&serde_json::json!({"status": p.status})),
            )
            .await
        {
            tracing::info!(daemonset = %name, error = %e, "updating status failed");
            failed += 1;
        }
    }
    failed
}
