//! Writes the Endpoints and EndpointSlices `endpoints.rs` builds, only where
//! they differ from what is stored, and removes those whose Service is gone.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::reflector::Store;
use kube::Resource;

use super::endpoints::{
    build_endpoints, build_slices, selected, MANAGED_BY, MANAGED_BY_LABEL, SERVICE_NAME_LABEL,
};

fn key<K: Resource>(o: &K) -> (String, String) {
    (
        o.meta().namespace.clone().unwrap_or_default(),
        o.meta().name.clone().unwrap_or_default(),
    )
}

async fn put<K>(api: Api<K>, desired: K, stored: Option<&Arc<K>>) -> Result<(), kube::Error>
where
    K: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = desired.meta().name.clone().unwrap_or_default();
    match stored {
        None => api
            .create(&PostParams::default(), &desired)
            .await
            .map(|_| ()),
        Some(old) => {
            let mut obj = desired;
            obj.meta_mut().resource_version = old.meta().resource_version.clone();
            obj.meta_mut().uid = old.meta().uid.clone();
            api.replace(&name, &PostParams::default(), &obj)
                .await
                .map(|_| ())
        }
    }
}

fn same_endpoints(a: &Endpoints, b: &Endpoints) -> bool {
    a.subsets == b.subsets && a.metadata.labels == b.metadata.labels
}

fn same_slice(a: &EndpointSlice, b: &EndpointSlice) -> bool {
    a.endpoints == b.endpoints
        && a.ports == b.ports
        && a.address_type == b.address_type
        && a.metadata.labels == b.metadata.labels
}

/// One pass; returns how many writes failed.
pub async fn pass(
    client: &kube::Client,
    services: &Store<Service>,
    endpoints: &Store<Endpoints>,
    slices: &Store<EndpointSlice>,
    pods_by_ns: &HashMap<String, Vec<Arc<Pod>>>,
) -> usize {
    let mut failed = 0;
    let stored_eps: HashMap<(String, String), Arc<Endpoints>> = endpoints
        .state()
        .into_iter()
        .map(|e| (key(&*e), e))
        .collect();
    let managed: Vec<Arc<EndpointSlice>> = slices
        .state()
        .into_iter()
        .filter(|s| {
            s.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(MANAGED_BY_LABEL))
                .map(String::as_str)
                == Some(MANAGED_BY)
        })
        .collect();
    let stored_slices: HashMap<(String, String), Arc<EndpointSlice>> =
        managed.iter().map(|s| (key(&**s), s.clone())).collect();
    let mut wanted_slices: HashSet<(String, String)> = HashSet::new();
    let mut live_services: HashSet<(String, String)> = HashSet::new();
    let mut selectorless: HashSet<(String, String)> = HashSet::new();
    let empty = Vec::new();

    for svc in services.state() {
        let k = key(&*svc);
        live_services.insert(k.clone());
        if svc.metadata.deletion_timestamp.is_some() {
            // Going away (in the foreground: the collector is deleting its
            // slices); writing them again would keep it forever.
            selectorless.insert(k);
            continue;
        }
        let pods = pods_by_ns.get(&k.0).unwrap_or(&empty);
        let Some(picked) = selected(&svc, pods) else {
            selectorless.insert(k);
            continue;
        };
        let ep = build_endpoints(&svc, &picked);
        let old = stored_eps.get(&k);
        if old.is_none_or(|o| !same_endpoints(o, &ep)) {
            let api: Api<Endpoints> = Api::namespaced(client.clone(), &k.0);
            if let Err(e) = put(api, ep, old).await {
                tracing::info!(service = %k.1, namespace = %k.0, error = %e, "writing endpoints failed");
                failed += 1;
            }
        }
        for sl in build_slices(&svc, &picked) {
            let sk = key(&sl);
            wanted_slices.insert(sk.clone());
            let old = stored_slices.get(&sk);
            if old.is_none_or(|o| !same_slice(o, &sl)) {
                let api: Api<EndpointSlice> = Api::namespaced(client.clone(), &sk.0);
                if let Err(e) = put(api, sl, old).await {
                    tracing::info!(slice = %sk.1, namespace = %sk.0, error = %e, "writing endpointslice failed");
                    failed += 1;
                }
            }
        }
    }
    for s in managed {
        let sk = key(&*s);
        if wanted_slices.contains(&sk) {
            continue;
        }
        // Slices of a service that still exists but has no selector any
        // more are left to their users, as Kubernetes does.
        let svc_name = s
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
            .cloned()
            .unwrap_or_default();
        if selectorless.contains(&(sk.0.clone(), svc_name)) {
            continue;
        }
        let api: Api<EndpointSlice> = Api::namespaced(client.clone(), &sk.0);
        match api.delete(&sk.1, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                tracing::info!(slice = %sk.1, error = %e, "removing stale endpointslice failed");
                failed += 1;
            }
        }
    }
    for (k, _) in stored_eps {
        if live_services.contains(&k) || (k.0 == "default" && k.1 == "kubernetes") {
            continue;
        }
        let api: Api<Endpoints> = Api::namespaced(client.clone(), &k.0);
        match api.delete(&k.1, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                tracing::info!(endpoints = %k.1, error = %e, "removing endpoints of a deleted service failed");
                failed += 1;
            }
        }
    }
    failed
}
