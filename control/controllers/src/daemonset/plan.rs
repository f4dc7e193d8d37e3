//! One DaemonSet's pass as kube-controller-manager's `syncDaemonSet` makes
//! it: `manage` (a pod on every eligible node, none elsewhere, failed pods
//! replaced, extras removed), then — only when manage has nothing to do
//! and the last pass's writes are seen — one rolling-update step
//! (`rolling_update`), then the status. Pure.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::core::{Selector, SelectorExt};

use super::pod::{
    availability, creation_order, eligible, is_updated, template_generation, template_hash,
};
use crate::pods::{controller_of, is_ready, node_name, phase};

#[derive(Debug, Default)]
pub struct DsPlan {
    pub create_on: Vec<String>,
    pub delete: Vec<Arc<Pod>>,
    pub status: serde_json::Value,
    /// When a ready pod becomes available (minReadySeconds): look again then.
    pub requeue_after: Option<Duration>,
}

/// What the pass knows about its DaemonSet.
struct Facts<'a> {
    ds: &'a DaemonSet,
    hash: String,
    generation: Option<&'a str>,
    min_ready: i32,
    now: Timestamp,
}

impl Facts<'_> {
    fn updated(&self, p: &Pod) -> bool {
        is_updated(p, &self.hash, self.generation)
    }
    fn available(&self, p: &Pod, requeue: &mut Option<Duration>) -> bool {
        let (ok, wait) = availability(p, self.min_ready, self.now);
        if let Some(w) = wait {
            *requeue = Some(requeue.map_or(w, |r| r.min(w)));
        }
        ok
    }
}

fn rolling(ds: &DaemonSet) -> bool {
    ds.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate")
}

/// An int or a percentage of `of`, rounded up (Kubernetes'
/// `GetScaledValueFromIntOrPercent(.., true)` as the DaemonSet uses it).
fn scaled(v: Option<&IntOrString>, of: usize) -> usize {
    match v {
        Some(IntOrString::Int(n)) => (*n).max(0) as usize,
        Some(IntOrString::String(p)) => {
            let pct: f64 = p.trim_end_matches('%').parse().unwrap_or(0.0);
            (pct.max(0.0) * of as f64 / 100.0).ceil() as usize
        }
        None => 0,
    }
}

/// (maxSurge, maxUnavailable) for `desired` nodes; never both zero.
pub fn surge_and_unavailable(ds: &DaemonSet, desired: usize) -> (usize, usize) {
    if !rolling(ds) {
        return (0, 0);
    }
    let ru = ds
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.rolling_update.as_ref());
    let surge = scaled(ru.and_then(|r| r.max_surge.as_ref()), desired);
    let unavailable = scaled(ru.and_then(|r| r.max_unavailable.as_ref()), desired);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

fn allows_surge(ds: &DaemonSet) -> bool {
    surge_and_unavailable(ds, 1).0 > 0
}

fn finished(p: &Pod) -> bool {
    matches!(phase(p), "Succeeded" | "Failed")
}

/// `manage` for one node that should run the daemon: what to create and
/// delete among its live pods (not being deleted, not finished).
fn manage_node(f: &Facts, node: &str, live: &[Arc<Pod>], out: &mut DsPlan) {
    if live.is_empty() {
        out.create_on.push(node.to_string());
        return;
    }
    let mut sorted = live.to_vec();
    sorted.sort_by(|a, b| creation_order(a, b));
    if !allows_surge(f.ds) {
        // Keep the oldest; extras go.
        out.delete.extend(sorted.into_iter().skip(1));
        return;
    }
    // With surge, two pods may share a node: the oldest current one while
    // it is not available yet, and the oldest old one while it is ready.
    let (mut newest, mut oldest) = (None, None);
    for p in sorted {
        let slot = if f.updated(&p) {
            &mut newest
        } else {
            &mut oldest
        };
        if slot.is_none() {
            *slot = Some(p);
        } else {
            out.delete.push(p);
        }
    }
    if let (Some(new), Some(old)) = (newest, oldest) {
        let mut ignore = None;
        if !is_ready(&old) || f.available(&new, &mut ignore) {
            out.delete.push(old);
        }
    }
}

/// A node's pod of the current template and its old one, either absent.
type NewAndOld = (Option<Arc<Pod>>, Option<Arc<Pod>>);

/// The current and the old pod of a node, or `None` when it has more
/// than one of either (manage cleans that up first).
fn split(f: &Facts, live: &[Arc<Pod>]) -> Option<NewAndOld> {
    let (mut new, mut old) = (None, None);
    for p in live {
        let slot = if f.updated(p) { &mut new } else { &mut old };
        if slot.is_some() {
            return None;
        }
        *slot = Some(p.clone());
    }
    Some((new, old))
}

/// One rolling-update step over every node with pods (Kubernetes'
/// `rollingUpdate`): without surge, delete old pods within the
/// unavailability budget (manage then makes their replacements); with
/// surge, make new pods beside old ones within the surge budget and delete
/// an old pod once its node's new one is available.
fn rolling_update(
    f: &Facts,
    by_node: &BTreeMap<String, Vec<Arc<Pod>>>,
    should_run: &HashMap<String, bool>,
    desired: usize,
    out: &mut DsPlan,
) {
    let (max_surge, max_unavailable) = surge_and_unavailable(f.ds, desired);
    let mut requeue = out.requeue_after;
    if max_surge == 0 {
        let mut unavailable = 0usize;
        let mut replace: Vec<Arc<Pod>> = Vec::new();
        let mut candidates: Vec<Arc<Pod>> = Vec::new();
        for live in by_node.values() {
            let Some((new, old)) = split(f, live) else {
                unavailable += 1;
                continue;
            };
            match (new, old) {
                (None, None) | (Some(_), Some(_)) => unavailable += 1,
                (Some(new), None) => {
                    if !f.available(&new, &mut requeue) {
                        unavailable += 1;
                    }
                }
                (None, Some(old)) => {
                    if !f.available(&old, &mut requeue) {
                        replace.push(old);
                    } else if unavailable < max_unavailable {
                        candidates.push(old);
                    }
                }
            }
        }
        let room = max_unavailable
            .saturating_sub(unavailable)
            .min(candidates.len());
        out.delete.extend(replace);
        out.delete.extend(candidates.into_iter().take(room));
    } else {
        let mut surging = 0usize;
        let mut available = 0usize;
        let mut allowed: Vec<String> = Vec::new();
        let mut candidates: Vec<String> = Vec::new();
        let mut sunset: Vec<Arc<Pod>> = Vec::new();
        for (node, live) in by_node {
            let Some((new, old)) = split(f, live) else {
                surging += 1;
                continue;
            };
            let runs = should_run.get(node).copied().unwrap_or(false);
            if let Some(p) = old.as_ref().or(new.as_ref()) {
                if f.available(p, &mut requeue) {
                    available += 1;
                }
            }
            match (new, old) {
                (_, None) => {}
                (None, Some(old)) => {
                    if !f.available(&old, &mut requeue) {
                        if runs {
                            allowed.push(node.clone());
                        } else {
                            out.delete.push(old);
                        }
                    } else if !runs {
                        sunset.push(old);
                    } else if surging < max_surge {
                        candidates.push(node.clone());
                    }
                }
                (Some(new), Some(old)) => {
                    if f.available(&new, &mut requeue) {
                        out.delete.push(old);
                    } else {
                        surging += 1;
                    }
                }
            }
        }
        // Old pods on nodes that no longer run the daemon go only while
        // enough others are available.
        let deletable = available.saturating_sub(desired).min(sunset.len());
        out.delete.extend(sunset.into_iter().take(deletable));
        let room = max_surge.saturating_sub(surging).min(candidates.len());
        out.create_on.extend(allowed);
        out.create_on.extend(candidates.into_iter().take(room));
    }
    out.requeue_after = requeue;
}

/// The pass. `pods` are the namespace's pods as the loop believes them;
/// `settled` says every write of earlier passes has been seen.
pub fn plan(
    ds: &DaemonSet,
    nodes: &[Arc<Node>],
    pods: &[Arc<Pod>],
    now: Timestamp,
    settled: bool,
) -> DsPlan {
    let uid = ds.metadata.uid.clone().unwrap_or_default();
    let spec = ds.spec.as_ref();
    let f = Facts {
        ds,
        hash: template_hash(ds),
        generation: template_generation(ds),
        min_ready: spec.and_then(|s| s.min_ready_seconds).unwrap_or(0),
        now,
    };
    let selector = spec.and_then(|s| Selector::try_from(s.selector.clone()).ok());
    // Every pod of ours by node, but finished pods already being deleted
    // (nothing more to do with those).
    let mut all: BTreeMap<String, Vec<Arc<Pod>>> = BTreeMap::new();
    for p in pods {
        if controller_of(p).is_none_or(|c| c.uid != uid) {
            continue;
        }
        let labels = p.metadata.labels.clone().unwrap_or_default();
        if !selector.as_ref().is_some_and(|s| s.matches(&labels)) {
            continue;
        }
        if finished(p) && p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        all.entry(node_name(p).unwrap_or("").to_string())
            .or_default()
            .push(p.clone());
    }
    let live_of = |v: &[Arc<Pod>]| -> Vec<Arc<Pod>> {
        v.iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none() && !finished(p))
            .cloned()
            .collect()
    };
    let mut out = DsPlan::default();
    let should_run: HashMap<String, bool> = nodes
        .iter()
        .filter_map(|n| Some((n.metadata.name.clone()?, eligible(ds, n))))
        .collect();
    let desired = should_run.values().filter(|r| **r).count();

    // manage
    let empty = Vec::new();
    for (node, runs) in &should_run {
        let here = all.get(node).unwrap_or(&empty);
        out.delete.extend(
            here.iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none() && finished(p))
                .cloned(),
        );
        let live = live_of(here);
        if *runs {
            manage_node(&f, node, &live, &mut out);
        } else {
            out.delete.extend(live);
        }
    }
    for (node, here) in &all {
        if !should_run.contains_key(node) {
            out.delete.extend(
                here.iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .cloned(),
            );
        }
    }
    out.create_on.sort();
    let managed = !out.create_on.is_empty() || !out.delete.is_empty();
    if !managed && settled && rolling(ds) {
        let live: BTreeMap<String, Vec<Arc<Pod>>> = all
            .iter()
            .map(|(n, v)| (n.clone(), live_of(v)))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        rolling_update(&f, &live, &should_run, desired, &mut out);
    }

    // status
    let (mut scheduled, mut ready, mut available, mut updated, mut misscheduled) =
        (0usize, 0usize, 0usize, 0usize, 0usize);
    let mut requeue = out.requeue_after;
    for (node, runs) in &should_run {
        let mut here = all.get(node).cloned().unwrap_or_default();
        if !*runs {
            if !here.is_empty() {
                misscheduled += 1;
            }
            continue;
        }
        if here.is_empty() {
            continue;
        }
        scheduled += 1;
        here.sort_by(|a, b| creation_order(a, b));
        let p = &here[0];
        if is_ready(p) {
            ready += 1;
            if f.available(p, &mut requeue) {
                available += 1;
            }
        }
        if f.updated(p) {
            updated += 1;
        }
    }
    out.requeue_after = requeue;
    let observed = if settled {
        ds.metadata.generation.unwrap_or(0)
    } else {
        ds.status
            .as_ref()
            .and_then(|s| s.observed_generation)
            .unwrap_or(0)
    };
    out.status = serde_json::json!({
        "desiredNumberScheduled": desired,
        "currentNumberScheduled": scheduled,
        "numberMisscheduled": misscheduled,
        "numberReady": ready,
        "numberAvailable": available,
        "numberUnavailable": desired.saturating_sub(available),
        "updatedNumberScheduled": updated,
        "observedGeneration": observed,
    });
    out
}
