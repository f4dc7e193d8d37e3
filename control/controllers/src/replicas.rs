//! ReplicaSet and ReplicationController: keep `replicas` active pods made
//! from the template, adopting matching orphans and releasing owned pods
//! whose labels no longer match, and report counts in status. The plan is
//! a pure function; the loop applies it and remembers its own creates and
//! deletes until the watch shows them, so a pass never counts twice.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::reflector::Store;
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::pods::{controller_of, deletion_order, generate_name, is_active, is_ready};

/// What the two replica kinds have in common.
pub trait ReplicaOwner:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + std::fmt::Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    fn desired(&self) -> i32;
    fn selects(&self, labels: &BTreeMap<String, String>) -> bool;
    fn template(&self) -> Option<&PodTemplateSpec>;
    /// The counts this owner's status shows now.
    fn current_status(&self) -> ReplicaStatus;
}

impl ReplicaOwner for ReplicaSet {
    fn desired(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        let Some(sel) = self.spec.as_ref().map(|s| s.selector.clone()) else {
            return false;
        };
        // An empty selector would take every pod in the namespace: never.
        if sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
            && sel.match_expressions.as_ref().is_none_or(|m| m.is_empty())
        {
            return false;
        }
        Selector::try_from(sel).is_ok_and(|s| s.matches(labels))
    }
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().and_then(|s| s.template.as_ref())
    }
    fn current_status(&self) -> ReplicaStatus {
        let s = self.status.clone().unwrap_or_default();
        ReplicaStatus {
            replicas: s.replicas,
            fully_labeled: s.fully_labeled_replicas.unwrap_or(0),
            ready: s.ready_replicas.unwrap_or(0),
            available: s.available_replicas.unwrap_or(0),
            observed_generation: s.observed_generation.unwrap_or(0),
        }
    }
}

impl ReplicaOwner for ReplicationController {
    fn desired(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        // An RC without a selector selects by its template's labels.
        let sel = self.spec.as_ref().and_then(|s| {
            s.selector.clone().filter(|m| !m.is_empty()).or_else(|| {
                s.template
                    .as_ref()
                    .and_then(|t| t.metadata.as_ref())
                    .and_then(|m| m.labels.clone())
            })
        });
        match sel {
            Some(sel) if !sel.is_empty() => sel.iter().all(|(k, v)| labels.get(k) == Some(v)),
            _ => false,
        }
    }
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().and_then(|s| s.template.as_ref())
    }
    fn current_status(&self) -> ReplicaStatus {
        let s = self.status.clone().unwrap_or_default();
        ReplicaStatus {
            replicas: s.replicas,
            fully_labeled: s.fully_labeled_replicas.unwrap_or(0),
            ready: s.ready_replicas.unwrap_or(0),
            available: s.available_replicas.unwrap_or(0),
            observed_generation: s.observed_generation.unwrap_or(0),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicaStatus {
    pub replicas: i32,
    pub fully_labeled: i32,
    pub ready: i32,
    pub available: i32,
    pub observed_generation: i64,
}

#[derive(Debug, Default)]
pub struct Plan {
    pub adopt: Vec<Arc<Pod>>,
    pub release: Vec<Arc<Pod>>,
    pub create: usize,
    pub delete: Vec<Arc<Pod>>,
    pub status: ReplicaStatus,
}

fn labels(p: &Pod) -> BTreeMap<String, String> {
    p.metadata.labels.clone().unwrap_or_default()
}

/// Compares the owner's desired count with the pods of its namespace.
pub fn plan<K: ReplicaOwner>(owner: &K, pods: &[Arc<Pod>]) -> Plan {
    let uid = owner.meta().uid.clone().unwrap_or_default();
    let deleting = owner.meta().deletion_timestamp.is_some();
    let mut plan = Plan::default();
    let mut mine: Vec<Arc<Pod>> = Vec::new();
    for p in pods {
        let selected = owner.selects(&labels(p));
        match controller_of(p) {
            Some(c) if c.uid == uid => {
                if selected {
                    mine.push(p.clone());
                } else if is_active(p) {
                    plan.release.push(p.clone());
                }
            }
            // Orphans that match are adopted, unless the owner is going away.
            None if selected && is_active(p) && !deleting => {
                plan.adopt.push(p.clone());
                mine.push(p.clone());
            }
            _ => {}
        }
    }
    let mut active: Vec<Arc<Pod>> = mine.into_iter().filter(|p| is_active(p)).collect();
    let desired = owner.desired().max(0) as usize;
    if !deleting {
        if active.len() < desired {
            plan.create = desired - active.len();
        } else if active.len() > desired {
            active.sort_by(|a, b| deletion_order(a, b));
            plan.delete = active[..active.len() - desired].to_vec();
        }
    }
    let ready = active.iter().filter(|p| is_ready(p)).count() as i32;
    plan.status = ReplicaStatus {
        replicas: active.len() as i32,
        fully_labeled: active.len() as i32,
        ready,
        available: ready,
        observed_generation: owner.meta().generation.unwrap_or(0),
    };
    plan
}

/// The pod the owner's template describes, owned by it.
pub fn pod_from_template<K: ReplicaOwner>(owner: &K) -> Option<Pod> {
    let t = owner.template()?;
    let meta = owner.meta();
    let name = meta.name.clone()?;
    let tm = t.metadata.clone().unwrap_or_default();
    Some(Pod {
        metadata: ObjectMeta {
            name: Some(generate_name(&format!("{name}-"))),
            generate_name: Some(format!("{name}-")),
            namespace: meta.namespace.clone(),
            labels: tm.labels,
            annotations: tm.annotations,
            finalizers: tm.finalizers,
            owner_references: Some(vec![owner_ref(owner)?]),
            ..Default::default()
        },
        spec: t.spec.clone(),
        status: None,
    })
}

pub fn owner_ref<K: Resource<DynamicType = ()>>(owner: &K) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.meta().name.clone()?,
        uid: owner.meta().uid.clone()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// Creates and deletes this process made whose effect the pod watch hasn't
/// shown yet (kube-controller-manager's "expectations").
#[derive(Default)]
pub struct InFlight {
    created: HashMap<String, (Instant, Arc<Pod>)>,
    deleted: HashMap<String, Instant>,
}

/// After this long an expectation is dropped: the watch must have missed it.
const EXPECTATION_TTL: Duration = Duration::from_secs(60);

impl InFlight {
    /// Namespace pods as this process believes them to be.
    pub fn apply(&mut self, store: &[Arc<Pod>]) -> Vec<Arc<Pod>> {
        let now = Instant::now();
        let seen: HashSet<&str> = store
            .iter()
            .filter_map(|p| p.metadata.uid.as_deref())
            .collect();
        self.created
            .retain(|uid, (t, _)| !seen.contains(uid.as_str()) && now - *t < EXPECTATION_TTL);
        self.deleted
            .retain(|uid, t| seen.contains(uid.as_str()) && now - *t < EXPECTATION_TTL);
        store
            .iter()
            .filter(|p| {
                !p.metadata
                    .uid
                    .as_deref()
                    .is_some_and(|u| self.deleted.contains_key(u))
            })
            .cloned()
            .chain(self.created.values().map(|(_, p)| p.clone()))
            .collect()
    }
    pub fn created(&mut self, p: Pod) {
        if let Some(uid) = p.metadata.uid.clone() {
            self.created.insert(uid, (Instant::now(), Arc::new(p)));
        }
    }
    pub fn deleted(&mut self, uid: &str) {
        self.deleted.insert(uid.to_string(), Instant::now());
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn rs(replicas: i32) -> ReplicaSet {
        let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("rs-uid".into()),
                generation: Some(3),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                selector: LabelSelector {
                    match_labels: Some(labels.clone()),
                    ..Default::default()
                },
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec::default()),
                }),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn pod(name: &str, app: &str, owner: Option<&str>) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some(format!("{name}-uid")),
                labels: Some(BTreeMap::from([("app".to_string(), app.to_string())])),
                owner_references: owner.map(|u| {
                    vec![OwnerReference {
                        uid: u.into(),
                        controller: Some(true),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                ..Default::default()
            }),
        })
    }

    #[test]
    fn creates_the_difference() {
        let p = plan(&rs(3), &[pod("a", "web", Some("rs-uid"))]);
        assert_eq!(p.create, 2);
        assert!(p.delete.is_empty());
        assert_eq!(p.status.replicas, 1);
        assert_eq!(p.status.observed_generation, 3);
    }

    #[test]
    fn deletes_surplus_and_ignores_others() {
        let pods = [
            pod("a", "web", Some("rs-uid")),
            pod("b", "web", Some("rs-uid")),
            pod("c", "web", Some("other")),
            pod("d", "db", None),
        ];
        let p = plan(&rs(1), &pods);
        assert_eq!(p.create, 0);
        assert_eq!(p.delete.len(), 1);
        assert!(p.adopt.is_empty());
    }

    #[test]
    fn adopts_orphans_and_releases_mismatches() {
        let pods = [pod("a", "web", None), pod("b", "db", Some("rs-uid"))];
        let p = plan(&rs(1), &pods);
        assert_eq!(p.adopt.len(), 1);
        assert_eq!(p.release.len(), 1);
        assert_eq!(p.create, 0);
    }

    #[test]
    fn in_flight_creates_count_until_seen() {
        let mut fl = InFlight::default();
        fl.created((*pod("n1", "web", Some("rs-uid"))).clone());
        let view = fl.apply(&[]);
        assert_eq!(plan(&rs(1), &view).create, 0);
        // Seen by the watch: the expectation is dropped, the pod still counts.
        let store = [pod("n1", "web", Some("rs-uid"))];
        assert_eq!(fl.apply(&store).len(), 1);
        assert!(fl.created.is_empty());
    }

    #[test]
    fn template_pods_are_owned_and_named() {
        let p = pod_from_template(&rs(1)).unwrap();
        assert!(p.metadata.name.unwrap().starts_with("web-"));
        let o = &p.metadata.owner_references.unwrap()[0];
        assert_eq!((o.kind.as_str(), o.uid.as_str()), ("ReplicaSet", "rs-uid"));
    }
}
