//! Deployments: one ReplicaSet per pod template (named and labelled by the
//! template's hash), rolled from old to new within maxSurge/maxUnavailable
//! using the ReplicaSets' available counts, revisions recorded so that
//! `kubectl rollout undo` finds the previous template, and the status
//! `kubectl rollout status` reads. Pure plan here; `apply` does the calls.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, Patch, PatchParams, PostParams};

use super::replicas::owner_ref;

pub const HASH_LABEL: &str = "pod-template-hash";
pub const REVISION: &str = "deployment.kubernetes.io/revision";

/// A stable hash of the template (without the hash label itself).
pub fn template_hash(t: &PodTemplateSpec) -> String {
    let mut t = t.clone();
    if let Some(l) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        l.remove(HASH_LABEL);
    }
    let json = serde_json::to_string(&t).unwrap_or_default();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    json.hash(&mut h);
    // Ten characters from the safe alphabet, like kube's SafeEncodeString.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut v = h.finish();
    (0..10)
        .map(|_| {
            let c = ALPHABET[(v % ALPHABET.len() as u64) as usize] as char;
            v /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

fn without_hash(t: Option<&PodTemplateSpec>) -> Option<PodTemplateSpec> {
    let mut t = t?.clone();
    if let Some(l) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        l.remove(HASH_LABEL);
    }
    Some(t)
}

fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn status_of(rs: &ReplicaSet) -> (i32, i32, i32) {
    let s = rs.status.clone().unwrap_or_default();
    (
        s.replicas,
        s.ready_replicas.unwrap_or(0),
        s.available_replicas.unwrap_or(0),
    )
}

/// maxSurge / maxUnavailable as numbers (percentages of `desired`: surge
/// rounds up, unavailable down, as Kubernetes does); never both zero.
pub fn surge_and_unavailable(d: &Deployment, desired: i32) -> (i32, i32) {
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let resolve = |v: Option<&IntOrString>, up: bool| -> i32 {
        match v {
            Some(IntOrString::Int(n)) => (*n).max(0),
            Some(IntOrString::String(p)) => {
                let pct: f64 = p.trim_end_matches('%').parse().unwrap_or(25.0);
                let x = pct * desired as f64 / 100.0;
                (if up { x.ceil() } else { x.floor() }) as i32
            }
            None => {
                let x = 25.0 * desired as f64 / 100.0;
                (if up { x.ceil() } else { x.floor() }) as i32
            }
        }
    };
    let surge = resolve(ru.and_then(|r| r.max_surge.as_ref()), true);
    let unavailable = resolve(ru.and_then(|r| r.max_unavailable.as_ref()), false);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

#[derive(Debug, Default, PartialEq)]
pub struct DeployPlan {
    /// A new ReplicaSet to create (already sized).
    pub create: Option<ReplicaSet>,
    /// (ReplicaSet name, new spec.replicas, new revision annotation).
    pub scale: Vec<(String, i32, Option<i64>)>,
    pub status: serde_json::Value,
    pub revision: i64,
}

fn is_recreate(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        == Some("Recreate")
}

/// Plans one step of the rollout for `d` given the ReplicaSets it owns.
pub fn plan(d: &Deployment, owned: &[Arc<ReplicaSet>]) -> DeployPlan {
    let spec = d.spec.clone().unwrap_or_default();
    let desired = spec.replicas.unwrap_or(1).max(0);
    let name = d.metadata.name.clone().unwrap_or_default();
    let hash = template_hash(&spec.template);
    let wanted = without_hash(Some(&spec.template));
    let max_rev = owned.iter().map(|r| revision(r)).max().unwrap_or(0);
    let new_rs = owned
        .iter()
        .find(|r| without_hash(r.spec.as_ref().and_then(|s| s.template.as_ref())) == wanted);
    let olds: Vec<&Arc<ReplicaSet>> = owned
        .iter()
        .filter(|r| new_rs.is_none_or(|n| n.metadata.uid != r.metadata.uid))
        .collect();
    let paused = spec.paused == Some(true);
    let mut out = DeployPlan::default();

    let old_total: i32 = olds.iter().map(|r| spec_replicas(r)).sum();
    let (surge, max_unavail) = surge_and_unavailable(d, desired);
    let new_rev = match new_rs {
        // A template rolled back to becomes the newest revision again.
        Some(n) if revision(n) < max_rev => max_rev + 1,
        Some(n) => revision(n).max(1),
        None => max_rev + 1,
    };
    out.revision = new_rev;

    let (new_name, new_current, new_available) = match new_rs {
        Some(n) => (
            n.metadata.name.clone().unwrap_or_default(),
            spec_replicas(n),
            status_of(n).2,
        ),
        None => (format!("{name}-{hash}"), 0, 0),
    };
    if !paused {
        // Scale the new ReplicaSet up.
        let target_new = if is_recreate(d) {
            let old_pods: i32 = olds.iter().map(|r| status_of(r).0).sum();
            if old_total == 0 && old_pods == 0 {
                desired
            } else {
                0
            }
        } else if old_total == 0 {
            desired
        } else {
            let room = desired + surge - (old_total + new_current);
            (new_current + room.max(0))
                .min(desired)
                .max(new_current.min(desired))
        };
        match new_rs {
            None => out.create = Some(new_replicaset(d, &hash, target_new, new_rev)),
            Some(n) => {
                let rev_change = (revision(n) != new_rev).then_some(new_rev);
                if target_new != new_current || rev_change.is_some() {
                    out.scale.push((new_name.clone(), target_new, rev_change));
                }
            }
        }
        // Scale old ReplicaSets down, oldest first, keeping enough available.
        let mut olds_sorted = olds.clone();
        olds_sorted.sort_by_key(|r| {
            (
                revision(r),
                r.metadata.creation_timestamp.clone().map(|t| t.0),
            )
        });
        if is_recreate(d) {
            for r in &olds_sorted {
                if spec_replicas(r) != 0 {
                    out.scale
                        .push((r.metadata.name.clone().unwrap_or_default(), 0, None));
                }
            }
        } else {
            // kube-controller-manager's arithmetic: the total uses spec
            // counts, so a ReplicaSet status that lags behind a scale just
            // made never lets a pass take more than the budget.
            let min_available = desired - max_unavail;
            let all_spec: i32 = owned.iter().map(|r| spec_replicas(r)).sum();
            let new_unavailable = new_rs
                .map(|n| (spec_replicas(n) - status_of(n).2).max(0))
                .unwrap_or(0);
            let mut max_down = all_spec - min_available - new_unavailable;
            let mut planned: Vec<(String, i32)> = Vec::new();
            // 1. Unavailable old replicas serve nobody: they go first.
            for r in &olds_sorted {
                if max_down <= 0 {
                    break;
                }
                let cur = spec_replicas(r);
                let unhealthy = (cur - status_of(r).2).clamp(0, max_down);
                if unhealthy > 0 {
                    planned.push((r.metadata.name.clone().unwrap_or_default(), cur - unhealthy));
                    max_down -= unhealthy;
                }
            }
            // 2. Then available ones, as far as availability allows.
            let available: i32 = owned.iter().map(|r| status_of(r).2).sum();
            let mut budget = (available - min_available).min(max_down);
            for r in &olds_sorted {
                if budget <= 0 {
                    break;
                }
                let name_r = r.metadata.name.clone().unwrap_or_default();
                let cur = planned
                    .iter()
                    .find(|(n, _)| *n == name_r)
                    .map(|(_, c)| *c)
                    .unwrap_or_else(|| spec_replicas(r));
                let take = cur.min(budget);
                if take > 0 {
                    budget -= take;
                    match planned.iter_mut().find(|(n, _)| *n == name_r) {
                        Some(p) => p.1 = cur - take,
                        None => planned.push((name_r, cur - take)),
                    }
                }
            }
            out.scale
                .extend(planned.into_iter().map(|(n, c)| (n, c, None)));
        }
    }

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
    out.status = serde_json::json!({
        "observedGeneration": d.metadata.generation.unwrap_or(0),
        "replicas": all_replicas,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": available,
        "unavailableReplicas": (desired - available).max(0),
        "conditions": conditions,
    });
    out
}

fn new_replicaset(d: &Deployment, hash: &str, replicas: i32, rev: i64) -> ReplicaSet {
    let spec = d.spec.clone().unwrap_or_default();
    let name = d.metadata.name.clone().unwrap_or_default();
    let mut template = spec.template.clone();
    let tm = template.metadata.get_or_insert_with(Default::default);
    tm.labels
        .get_or_insert_with(Default::default)
        .insert(HASH_LABEL.into(), hash.into());
    let mut selector: LabelSelector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(Default::default)
        .insert(HASH_LABEL.into(), hash.into());
    let mut labels = tm.labels.clone().unwrap_or_default();
    labels.insert(HASH_LABEL.into(), hash.into());
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{name}-{hash}")),
            namespace: d.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(REVISION.to_string(), rev.to_string())])),
            owner_references: owner_ref(d).map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    }
}

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

/// Compares the counts and condition reasons, not the timestamps (which
/// change on every plan and would make every pass a write).
fn status_differs(current: &serde_json::Value, wanted: &serde_json::Value) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        DeploymentSpec, DeploymentStrategy, ReplicaSetStatus, RollingUpdateDeployment,
    };
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    fn deploy(replicas: i32, image: &str, surge: i32, unavail: i32) -> Deployment {
        let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
        Deployment {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("d-uid".into()),
                generation: Some(2),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                selector: LabelSelector {
                    match_labels: Some(labels.clone()),
                    ..Default::default()
                },
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(IntOrString::Int(surge)),
                        max_unavailable: Some(IntOrString::Int(unavail)),
                    }),
                }),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "c".into(),
                            image: Some(image.into()),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            status: None,
        }
    }

    fn with_status(
        mut rs: ReplicaSet,
        uid: &str,
        replicas: i32,
        available: i32,
    ) -> Arc<ReplicaSet> {
        rs.metadata.uid = Some(uid.into());
        rs.status = Some(ReplicaSetStatus {
            replicas,
            ready_replicas: Some(available),
            available_replicas: Some(available),
            ..Default::default()
        });
        Arc::new(rs)
    }

    #[test]
    fn first_rollout_creates_a_full_replicaset() {
        let d = deploy(3, "v1", 1, 0);
        let p = plan(&d, &[]);
        let rs = p.create.unwrap();
        assert_eq!(rs.spec.as_ref().unwrap().replicas, Some(3));
        assert_eq!(p.revision, 1);
        let hash = template_hash(&d.spec.as_ref().unwrap().template);
        assert_eq!(rs.metadata.name.unwrap(), format!("web-{hash}"));
    }

    #[test]
    fn rolling_update_with_max_unavailable_zero_surges_first() {
        let v1 = deploy(3, "v1", 1, 0);
        let old = with_status(
            new_replicaset(
                &v1,
                &template_hash(&v1.spec.as_ref().unwrap().template),
                3,
                1,
            ),
            "old",
            3,
            3,
        );
        let v2 = deploy(3, "v2", 1, 0);
        let p = plan(&v2, std::slice::from_ref(&old));
        // One surge pod for the new template; no old pod removed yet.
        assert_eq!(
            p.create.as_ref().unwrap().spec.as_ref().unwrap().replicas,
            Some(1)
        );
        assert!(p.scale.is_empty());
        assert_eq!(p.revision, 2);
        // Once the new pod is available, one old pod can go.
        let new = with_status(p.create.unwrap(), "new", 1, 1);
        let p = plan(&v2, &[old, new]);
        assert_eq!(p.scale, vec![(old_name(&v1), 2, None)]);
    }

    #[test]
    fn a_lagging_status_never_takes_more_than_the_budget() {
        let v1 = deploy(4, "v1", 1, 0);
        let v2 = deploy(4, "v2", 1, 0);
        let h1 = template_hash(&v1.spec.as_ref().unwrap().template);
        let h2 = template_hash(&v2.spec.as_ref().unwrap().template);
        // Old already scaled to 3 but its status still says 4 available;
        // the new one was scaled to 2 and has 1 available.
        let old = with_status(new_replicaset(&v1, &h1, 3, 1), "old", 4, 4);
        let new = with_status(new_replicaset(&v2, &h2, 2, 2), "new", 2, 1);
        let p = plan(&v2, &[old, new]);
        assert!(
            p.scale
                .iter()
                .all(|(n, r, _)| n != &old_name(&v1) || *r == 3),
            "{:?}",
            p.scale
        );
    }

    fn old_name(d: &Deployment) -> String {
        format!("web-{}", template_hash(&d.spec.as_ref().unwrap().template))
    }

    #[test]
    fn percentages_round_like_kubernetes() {
        let mut d = deploy(10, "v1", 0, 0);
        if let Some(ru) = d
            .spec
            .as_mut()
            .and_then(|s| s.strategy.as_mut())
            .and_then(|s| s.rolling_update.as_mut())
        {
            ru.max_surge = Some(IntOrString::String("25%".into()));
            ru.max_unavailable = Some(IntOrString::String("25%".into()));
        }
        assert_eq!(surge_and_unavailable(&d, 10), (3, 2));
        assert_eq!(surge_and_unavailable(&deploy(10, "v", 0, 0), 10), (0, 1));
    }

    #[test]
    fn a_rollback_bumps_the_old_template_to_the_newest_revision() {
        let v1 = deploy(2, "v1", 1, 0);
        let v2 = deploy(2, "v2", 1, 0);
        let rs1 = with_status(
            new_replicaset(
                &v1,
                &template_hash(&v1.spec.as_ref().unwrap().template),
                0,
                1,
            ),
            "r1",
            0,
            0,
        );
        let rs2 = with_status(
            new_replicaset(
                &v2,
                &template_hash(&v2.spec.as_ref().unwrap().template),
                2,
                2,
            ),
            "r2",
            2,
            2,
        );
        let p = plan(&v1, &[rs1, rs2]);
        assert_eq!(p.revision, 3);
        assert!(p
            .scale
            .iter()
            .any(|(n, r, rev)| n == &old_name(&v1) && *r == 1 && *rev == Some(3)));
    }
}
