//! The replica controller's decisions for one owner: pods to create,
//! delete, adopt or release, and the status counts; and the pod its
//! template describes. Pure.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::owner::{owner_ref, ReplicaOwner, ReplicaStatus};
use crate::pods::{controller_of, deletion_order, generate_name, is_active, is_ready};

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
