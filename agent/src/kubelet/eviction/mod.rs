//! Node-pressure eviction, kubelet's way: every monitoring interval the
//! manager observes the node (memory, filesystems, PIDs, each pod's memory
//! working set), compares the signals with the hard thresholds, publishes
//! the pressure conditions, and under memory, disk or PID pressure evicts
//! one pod (the first in kubelet's order for the starved resource, which
//! is measured per pod only then), then waits for it to be gone before
//! observing again. It asks the pod manager to kill; from containerd it
//! only reads writable-layer usage; it never evicts critical (static)
//! pods.

pub mod decide;
pub mod observe;
pub mod rank;
pub mod report;
pub mod threshold;
pub mod usage;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::{mpsc, watch};

use crate::kubelet::runtime::ContainerRuntime;
use crate::kubelet::source::Snapshot;
use crate::node::conditions::Pressure;
use crate::node::resources::{self, NodeResources, Resources};
use threshold::Threshold;

/// kubelet's `--eviction-pressure-transition-period` default.
pub const DEFAULT_TRANSITION_PERIOD: Duration = Duration::from_secs(300);
/// How long an evicted pod may take to release its memory before the
/// manager moves on (kubelet's pod cleanup timeout).
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
pub struct Settings {
    pub system_reserved: Resources,
    pub kube_reserved: Resources,
    pub hard: Vec<Threshold>,
    pub pressure_transition_period: Duration,
    /// Reading a handful of /proc and cgroup files is cheap; kubelet's 10 s
    /// housekeeping would let a memory hog grow for that long.
    pub monitoring_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            system_reserved: Resources::default(),
            kube_reserved: Resources::default(),
            hard: threshold::defaults(),
            pressure_transition_period: DEFAULT_TRANSITION_PERIOD,
            monitoring_interval: Duration::from_secs(1),
        }
    }
}

impl Settings {
    /// Capacity and allocatable = capacity − system-reserved −
    /// kube-reserved − hard eviction thresholds.
    pub fn node_resources(&self, capacity: Resources) -> NodeResources {
        let reservation = self
            .system_reserved
            .plus(&self.kube_reserved)
            .plus(&threshold::reservation(&self.hard, &capacity));
        NodeResources {
            capacity,
            allocatable: resources::allocatable(&capacity, &reservation),
        }
    }
}

/// Go's duration syntax (`5m0s`, `30s`, `1h30m`, `500ms`, `0`), as
/// kubelet's duration flags take it.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let bad = || format!("{text:?} is not a duration (like 30s, 5m0s, 1h)");
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = t;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(n);
        let num: f64 = num.parse().map_err(|_| bad())?;
        let u = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(u);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += num * scale;
        rest = tail;
    }
    Ok(Duration::from_secs_f64(total))
}

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
    pub events: Option<crate::kubelet::events::Recorder>,
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
    fn go_durations() {
        assert_eq!(parse_duration("5m0s"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn allocatable_follows_kubelet_formula() {
        let s = Settings {
            system_reserved: Resources::parse("cpu=100m,memory=1Gi").unwrap(),
            kube_reserved: Resources::parse("memory=256Mi").unwrap(),
            ..Default::default()
        };
        let r = s.node_resources(Resources {
            cpu_millis: Some(2000),
            memory: Some(8 << 30),
            ephemeral_storage: Some(100 << 30),
            pid: None,
        });
        assert_eq!(r.allocatable.cpu_millis, Some(1900));
        assert_eq!(
            r.allocatable.memory,
            Some((8 << 30) - (1 << 30) - (256 << 20) - (100 << 20))
        );
        assert_eq!(r.allocatable.ephemeral_storage, Some(90 << 30));
        assert_eq!(r.capacity.memory, Some(8 << 30));
    }

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
