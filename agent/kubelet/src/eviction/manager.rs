//! The eviction manager's loop: observe, decide, publish pressure, rank and
//! evict one pod, wait for it to go. Kills only through the pod manager;
//! never evicts critical (static) pods.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::{mpsc, watch};

use crate::eviction::settings::Settings;
use crate::eviction::{decide, observe, rank, report, threshold, usage};
use crate::node::conditions::Pressure;
use crate::node::resources::NodeResources;
use crate::runtime::container_runtime::ContainerRuntime;
use crate::source::snapshot::Snapshot;

/// How long an evicted pod may take to release its memory before the
/// manager moves on (kubelet's pod cleanup timeout).
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The pod manager's part of an eviction: kill the pod's containers for
/// good and report it Failed/Evicted with `message`.
#[derive(Clone, Debug)]
pub struct Eviction {
    pub uid: String,
    pub message: String,
    pub grace: Duration,
}

/// Where and what the manager observes.
pub struct Context {
    pub settings: Settings,
    pub resources: NodeResources,
    pub cgroup_root: String,
    /// The kubelet's root directory: nodefs.
    pub nodefs: PathBuf,
    /// containerd's snapshotter root: imagefs (often the same filesystem).
    pub imagefs: PathBuf,
    /// `--pod-log-dir`: pods' logs count as their local storage.
    pub pod_log_dir: PathBuf,
    pub node_name: String,
    /// The kubelet's Event recorder (pods from the API only).
    pub events: Option<crate::events::record::Recorder>,
    /// The owner label of this kubelet's containers.
    pub owner: String,
}

fn uid(p: &Pod) -> String {
    p.metadata.uid.clone().unwrap_or_default()
}

fn terminal(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some()
        || p.status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|ph| ph == "Failed" || ph == "Succeeded")
}

fn same_filesystem(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev(),
        // Unknown: treat as one disk, as before.
        _ => true,
    }
}

/// Runs until the pods channel closes.
pub async fn run<R: ContainerRuntime>(
    ctx: Context,
    runtime: Arc<R>,
    pods: watch::Receiver<Option<Arc<Snapshot>>>,
    evict: mpsc::Sender<Eviction>,
    pressure: watch::Sender<Pressure>,
) {
    let thresholds = threshold::with_allocatable(&ctx.settings.hard);
    tracing::info!(
        thresholds = %ctx.settings.hard.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(","),
        allocatable_memory = ?ctx.resources.allocatable.memory,
        "eviction manager started"
    );
    let mut tracker = decide::PressureTracker::default();
    let mut evicted: HashSet<String> = HashSet::new();
    let mut waiting: Option<(String, Instant)> = None;
    let mut last_met: Vec<threshold::Signal> = Vec::new();
    // On a separate image filesystem pods' emptyDirs and logs free
    // nothing: only image GC and writable layers would, which Capstan
    // does not do yet, so imagefs thresholds there set DiskPressure only.
    let image_fs_shared = same_filesystem(&ctx.nodefs, &ctx.imagefs);
    if !image_fs_shared {
        tracing::warn!(imagefs = %ctx.imagefs.display(), "imagefs is a separate filesystem: its thresholds set DiskPressure but evict no pods");
    }
    let paths = usage::Paths {
        root: ctx.nodefs.clone(),
        pod_log_dir: ctx.pod_log_dir.clone(),
        cgroup_root: ctx.cgroup_root.clone(),
        owner: ctx.owner.clone(),
    };
    let mut tick = tokio::time::interval(ctx.settings.monitoring_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if evict.is_closed() {
            return;
        }
        let snap = pods.borrow().clone().unwrap_or_default();
        let all: Vec<Arc<Pod>> = snap.pods.values().cloned().collect();
        let uids: Vec<String> = all.iter().map(|p| uid(p)).collect();
        let (root, nodefs, imagefs) = (
            ctx.cgroup_root.clone(),
            ctx.nodefs.clone(),
            ctx.imagefs.clone(),
        );
        // statvfs can block (a hung mount): never on the runtime's threads.
        let Ok(obs) =
            tokio::task::spawn_blocking(move || observe::read(&root, &uids, &nodefs, &imagefs))
                .await
        else {
            continue;
        };
        let signals = observe::signals(&obs, ctx.resources.allocatable.memory);
        let met = decide::met(&thresholds, &signals);
        let met_now: Vec<_> = met.iter().map(|m| m.threshold.signal).collect();
        if met_now != last_met {
            for m in &met {
                tracing::warn!(
                    threshold = %m.threshold,
                    available = m.reading.available,
                    amount = m.amount,
                    "eviction threshold met"
                );
            }
            if met.is_empty() {
                tracing::info!("no eviction threshold met");
            }
            last_met = met_now;
        }
        let p = tracker.observe(
            &met,
            Instant::now(),
            ctx.settings.pressure_transition_period,
        );
        pressure.send_if_modified(|cur| {
            let changed = *cur != p;
            *cur = p;
            changed
        });
        // One eviction at a time: the last victim's processes must be gone
        // before the node is judged again.
        if let Some((victim, deadline)) = &waiting {
            let cg = observe::pod_cgroup(&ctx.cgroup_root, victim);
            if observe::cgroup_has_processes(&cg) && Instant::now() < *deadline {
                continue;
            }
            waiting = None;
        }
        let actionable: Vec<decide::Met> = met
            .iter()
            .filter(|m| image_fs_shared || !m.threshold.signal.image_fs())
            .copied()
            .collect();
        let Some(m) = decide::to_reclaim(&actionable).copied() else {
            continue;
        };
        let resource = m.threshold.signal.resource();
        // Only pods that run something: one refused at admission (its
        // Failed status may not be back from the API yet) or still
        // pulling has nothing to reclaim.
        let pods: Vec<Arc<Pod>> = all
            .iter()
            .filter(|p| !terminal(p) && !evicted.contains(&uid(p)) && !rank::is_critical(p))
            .filter(|p| observe::cgroup_exists(&observe::pod_cgroup(&ctx.cgroup_root, &uid(p))))
            .cloned()
            .collect();
        let usage = usage::measure(&paths, runtime.as_ref(), &obs, &pods, resource).await;
        let mut per_pod: HashMap<String, Vec<(String, i64)>> = HashMap::new();
        let candidates = pods
            .into_iter()
            .zip(usage)
            .map(|(pod, u)| {
                per_pod.insert(uid(&pod), u.containers);
                rank::Candidate {
                    pod,
                    usage: u.total,
                }
            })
            .collect();
        let Some(victim) = rank::rank(resource, candidates).into_iter().next() else {
            continue;
        };
        let pod = victim.pod;
        let id = uid(&pod);
        let used = per_pod.remove(&id).unwrap_or_default();
        let containers: Vec<(String, i64, i64)> = rank::container_requests(&pod, resource)
            .into_iter()
            .filter_map(|(name, request)| {
                let u = used.iter().find(|(n, _)| *n == name)?.1;
                Some((name, u, request))
            })
            .collect();
        let message = rank::message(&m, &containers);
        tracing::warn!(
            pod = ?pod.metadata.name,
            namespace = ?pod.metadata.namespace,
            resource = resource.name(),
            usage = victim.usage,
            priority = rank::priority(&pod),
            %message,
            "evicting pod"
        );
        if evict
            .send(Eviction {
                uid: id.clone(),
                message: message.clone(),
                grace: Duration::ZERO,
            })
            .await
            .is_err()
        {
            return;
        }
        evicted.insert(id.clone());
        waiting = Some((id, Instant::now() + CLEANUP_TIMEOUT));
        if let Some(events) = &ctx.events {
            let node = &ctx.node_name;
            let now = jiff::Timestamp::now();
            events.record(report::threshold_met(node, resource.name(), now));
            events.record(report::pod_evicted(&pod, &message, node, now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_pods_are_not_candidates() {
        let p: Pod = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "a"}, "status": {"phase": "Failed"}}),
        )
        .unwrap();
        assert!(terminal(&p));
        let p: Pod = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "a"}, "status": {"phase": "Running"}}),
        )
        .unwrap();
        assert!(!terminal(&p));
    }
}
