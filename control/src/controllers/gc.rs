//! Garbage collection (background propagation): a dependent whose every
//! owner of a kind this control plane manages is gone is deleted. Before
//! deleting, the owner's absence is confirmed with a live GET, since the
//! dependent may simply be newer than this process's view of its owner.

use std::collections::HashSet;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ReplicationController, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams};
use kube::Resource;

/// Owner kinds whose objects this collector can see (group/version, kind).
const KNOWN: &[(&str, &str)] = &[
    ("apps/v1", "ReplicaSet"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "DaemonSet"),
    ("v1", "ReplicationController"),
    ("v1", "Service"),
];

/// True when the dependent has owners, all of them known kinds, and none of
/// their UIDs is in `live`.
pub fn orphaned(owners: &[OwnerReference], live: &HashSet<String>) -> bool {
    !owners.is_empty()
        && owners
            .iter()
            .all(|o| KNOWN.contains(&(o.api_version.as_str(), o.kind.as_str())))
        && owners.iter().all(|o| !live.contains(&o.uid))
}

async fn owner_exists(
    client: &kube::Client,
    ns: &str,
    o: &OwnerReference,
) -> Result<bool, kube::Error> {
    async fn get<K>(api: Api<K>, name: &str, uid: &str) -> Result<bool, kube::Error>
    where
        K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        Ok(api
            .get_opt(name)
            .await?
            .is_some_and(|x| x.meta().uid.as_deref() == Some(uid)))
    }
    let c = client.clone();
    match o.kind.as_str() {
        "ReplicaSet" => get(Api::<ReplicaSet>::namespaced(c, ns), &o.name, &o.uid).await,
        "Deployment" => get(Api::<Deployment>::namespaced(c, ns), &o.name, &o.uid).await,
        "DaemonSet" => get(Api::<DaemonSet>::namespaced(c, ns), &o.name, &o.uid).await,
        "ReplicationController" => {
            get(
                Api::<ReplicationController>::namespaced(c, ns),
                &o.name,
                &o.uid,
            )
            .await
        }
        "Service" => get(Api::<Service>::namespaced(c, ns), &o.name, &o.uid).await,
        _ => Ok(true),
    }
}

/// Deletes the orphaned dependents among `objects`; returns failures.
pub async fn collect<K>(client: &kube::Client, objects: &[Arc<K>], live: &HashSet<String>) -> usize
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let mut failed = 0;
    for obj in objects {
        let meta = obj.meta();
        if meta.deletion_timestamp.is_some() {
            continue;
        }
        let owners = meta.owner_references.clone().unwrap_or_default();
        if !orphaned(&owners, live) {
            continue;
        }
        let ns = meta.namespace.clone().unwrap_or_default();
        let name = meta.name.clone().unwrap_or_default();
        let mut any_alive = false;
        for o in &owners {
            match owner_exists(client, &ns, o).await {
                Ok(true) => any_alive = true,
                Ok(false) => {}
                Err(_) => any_alive = true,
            }
        }
        if any_alive {
            continue;
        }
        let api: Api<K> = Api::namespaced(client.clone(), &ns);
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {
                tracing::info!(kind = %K::kind(&()), name = %name, namespace = %ns, "garbage-collected dependent of a deleted owner")
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                tracing::info!(name = %name, error = %e, "garbage collection failed");
                failed += 1;
            }
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oref(kind: &str, api: &str, uid: &str) -> OwnerReference {
        OwnerReference {
            api_version: api.into(),
            kind: kind.into(),
            name: "x".into(),
            uid: uid.into(),
            ..Default::default()
        }
    }

    #[test]
    fn only_dependents_of_gone_known_owners() {
        let live = HashSet::from(["alive".to_string()]);
        assert!(orphaned(&[oref("ReplicaSet", "apps/v1", "dead")], &live));
        assert!(!orphaned(&[oref("ReplicaSet", "apps/v1", "alive")], &live));
        assert!(!orphaned(&[], &live));
        // An owner of a kind we don't watch keeps the object.
        assert!(!orphaned(&[oref("Job", "batch/v1", "dead")], &live));
        assert!(!orphaned(
            &[
                oref("ReplicaSet", "apps/v1", "dead"),
                oref("ReplicaSet", "apps/v1", "alive")
            ],
            &live
        ));
    }
}
