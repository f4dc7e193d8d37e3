//! The rollout arithmetic of one step: maxSurge/maxUnavailable, how far the
//! new ReplicaSet scales up and how far the old ones scale down (Recreate,
//! or RollingUpdate as kube-controller-manager counts). Pure.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::history::revision;
use super::replica_sets::{spec_replicas, status_of};

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

fn is_recreate(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        == Some("Recreate")
}

/// What the new ReplicaSet scales to in this step.
pub(super) fn target_new_replicas(
    d: &Deployment,
    olds: &[&Arc<ReplicaSet>],
    old_total: i32,
    desired: i32,
    surge: i32,
    new_current: i32,
) -> i32 {
    if is_recreate(d) {
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
    }
}

/// The old ReplicaSets' new sizes, oldest first, keeping enough available:
/// (name, spec.replicas, no revision change).
pub(super) fn scale_down_olds(
    d: &Deployment,
    owned: &[Arc<ReplicaSet>],
    olds: &[&Arc<ReplicaSet>],
    new_rs: Option<&Arc<ReplicaSet>>,
    desired: i32,
    max_unavail: i32,
) -> Vec<(String, i32, Option<i64>)> {
    let mut out = Vec::new();
    let mut olds_sorted = olds.to_vec();
    olds_sorted.sort_by_key(|r| {
        (
            revision(r),
            r.metadata.creation_timestamp.clone().map(|t| t.0),
        )
    });
    if is_recreate(d) {
        for r in &olds_sorted {
            if spec_replicas(r) != 0 {
                out.push((r.metadata.name.clone().unwrap_or_default(), 0, None));
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
        out.extend(planned.into_iter().map(|(n, c)| (n, c, None)));
    }
    out
}
