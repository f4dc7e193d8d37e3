//! One step of a Deployment's rollout, planned from the Deployment and the
//! ReplicaSets it owns: which ReplicaSet to create, which to scale, the
//! revision and the status. Pure; `apply` does the calls.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::history::{revision, template_hash, without_hash};
use super::replica_sets::{new_replicaset, spec_replicas, status_of};
use super::rollout::{scale_down_olds, surge_and_unavailable, target_new_replicas};
use super::status::rollout_status;

#[derive(Debug, Default, PartialEq)]
pub struct DeployPlan {
    /// A new ReplicaSet to create (already sized).
    pub create: Option<ReplicaSet>,
    /// (ReplicaSet name, new spec.replicas, new revision annotation).
    pub scale: Vec<(String, i32, Option<i64>)>,
    pub status: serde_json::Value,
    pub revision: i64,
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
        let target_new = target_new_replicas(d, &olds, old_total, desired, surge, new_current);
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
        out.scale.extend(scale_down_olds(
            d,
            owned,
            &olds,
            new_rs,
            desired,
            max_unavail,
        ));
    }

    out.status = rollout_status(
        d,
        owned,
        new_rs,
        desired,
        max_unavail,
        &new_name,
        new_available,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use k8s_openapi::api::apps::v1::{
        DeploymentSpec, DeploymentStrategy, ReplicaSetStatus, RollingUpdateDeployment,
    };
    use k8s_openapi::api::core::v1::PodTemplateSpec;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

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
