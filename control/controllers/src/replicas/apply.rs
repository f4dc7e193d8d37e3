//! Carrying out a replica plan through the API (creates and deletes in
//! parallel, adoption and release as patches, status), and one pass over
//! every owner of a kind. The only file here that calls the API.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::Store;

use super::in_flight::InFlight;
use super::owner::{owner_ref, ReplicaOwner};
use super::plan::{plan, pod_from_template, Plan};
use crate::pods::generate_name;

const PARALLEL_CALLS: usize = 16;

/// Applies `plan` for `owner`; returns how many calls failed.
pub async fn apply<K: ReplicaOwner>(
    client: &kube::Client,
    owner: &K,
    plan: &Plan,
    inflight: &mut InFlight,
) -> usize {
    let ns = owner.meta().namespace.clone().unwrap_or_default();
    let name = owner.meta().name.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut failed = 0;
    let Some(oref) = owner_ref(owner) else {
        return 0;
    };
    for p in &plan.adopt {
        let patch = serde_json::json!({"metadata": {
            "ownerReferences": [oref],
            "uid": p.metadata.uid,
        }});
        let pname = p.metadata.name.clone().unwrap_or_default();
        if let Err(e) = pods
            .patch(&pname, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::info!(owner = %name, pod = %pname, error = %e, "adopting pod failed");
            failed += 1;
        }
    }
    for p in &plan.release {
        let pname = p.metadata.name.clone().unwrap_or_default();
        let patch =
            serde_json::json!({"metadata": {"ownerReferences": null, "uid": p.metadata.uid}});
        if let Err(e) = pods
            .patch(&pname, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::info!(owner = %name, pod = %pname, error = %e, "releasing pod failed");
            failed += 1;
        }
    }
    if plan.create > 0 {
        let Some(template) = pod_from_template(owner) else {
            tracing::warn!(owner = %name, "owner has no pod template; nothing to create");
            return failed;
        };
        let calls: Vec<_> = (0..plan.create)
            .map(|_| {
                let mut pod = template.clone();
                pod.metadata.name = Some(generate_name(&format!("{name}-")));
                let pods = pods.clone();
                async move { pods.create(&PostParams::default(), &pod).await }
            })
            .collect();
        let results: Vec<_> = futures::stream::iter(calls)
            .buffer_unordered(PARALLEL_CALLS)
            .collect()
            .await;
        for r in results {
            match r {
                Ok(p) => inflight.created(p),
                Err(e) => {
                    tracing::info!(owner = %name, error = %e, "creating pod failed");
                    failed += 1;
                }
            }
        }
        tracing::info!(owner = %name, namespace = %ns, count = plan.create, "created pods");
    }
    if !plan.delete.is_empty() {
        let calls: Vec<_> = plan
            .delete
            .iter()
            .map(|p| {
                let pods = pods.clone();
                let pname = p.metadata.name.clone().unwrap_or_default();
                let uid = p.metadata.uid.clone().unwrap_or_default();
                async move {
                    let r = pods.delete(&pname, &DeleteParams::default()).await;
                    (uid, r)
                }
            })
            .collect();
        let results: Vec<_> = futures::stream::iter(calls)
            .buffer_unordered(PARALLEL_CALLS)
            .collect()
            .await;
        for (uid, r) in results {
            match r {
                Ok(_) => inflight.deleted(&uid),
                Err(kube::Error::Api(s)) if s.code == 404 => inflight.deleted(&uid),
                Err(e) => {
                    tracing::info!(owner = %name, error = %e, "deleting pod failed");
                    failed += 1;
                }
            }
        }
        tracing::info!(owner = %name, namespace = %ns, count = plan.delete.len(), "deleted surplus pods");
    }
    if plan.status != owner.current_status() {
        let s = plan.status;
        let patch = serde_json::json!({"status": {
            "replicas": s.replicas,
            "fullyLabeledReplicas": s.fully_labeled,
            "readyReplicas": s.ready,
            "availableReplicas": s.available,
            "observedGeneration": s.observed_generation,
        }});
        let api: Api<K> = Api::namespaced(client.clone(), &ns);
        if let Err(e) = api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::info!(owner = %name, error = %e, "updating status failed");
            failed += 1;
        }
    }
    failed
}

/// One pass over every owner of kind `K`.
pub async fn pass<K: ReplicaOwner>(
    client: &kube::Client,
    owners: &Store<K>,
    pods_by_ns: &HashMap<String, Vec<Arc<Pod>>>,
    inflight: &mut HashMap<String, InFlight>,
) -> usize {
    let mut failed = 0;
    let live: HashSet<String> = owners
        .state()
        .iter()
        .filter_map(|o| o.meta().uid.clone())
        .collect();
    inflight.retain(|uid, _| live.contains(uid));
    for owner in owners.state() {
        let ns = owner.meta().namespace.clone().unwrap_or_default();
        let uid = owner.meta().uid.clone().unwrap_or_default();
        let empty = Vec::new();
        let store = pods_by_ns.get(&ns).unwrap_or(&empty);
        let fl = inflight.entry(uid).or_default();
        let pods = fl.apply(store);
        let p = plan(&*owner, &pods);
        if p.create > 0
            || !p.delete.is_empty()
            || !p.adopt.is_empty()
            || !p.release.is_empty()
            || p.status != owner.current_status()
        {
            failed += apply(client, &*owner, &p, fl).await;
        }
    }
    failed
}
