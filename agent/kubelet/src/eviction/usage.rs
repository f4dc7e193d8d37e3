//! Each candidate pod's use of the starved resource, as kubelet's summary
//! stats give it: memory working set (cgroups); local storage, that is
//! the containers' writable layers (containerd's snapshot usage), their
//! logs and the pod's emptyDir volumes, in bytes or inodes; processes
//! (pids cgroup). Per container too, for the eviction message. Reads
//! only; the directory walks run on blocking threads.

use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use crate::eviction::observe::{self, Observations};
use crate::eviction::threshold::Resource;
use crate::ids;
use crate::runtime::container_runtime::ContainerRuntime;

/// Where a pod's usage is read.
#[derive(Clone, Debug)]
pub struct Paths {
    /// The kubelet's root dir (pods' emptyDir volumes live below it).
    pub root: PathBuf,
    pub pod_log_dir: PathBuf,
    pub cgroup_root: String,
    /// The owner label of this kubelet's containers.
    pub owner: String,
}

/// A pod's use of one resource, in its units, and each container's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodUsage {
    pub total: i64,
    pub containers: Vec<(String, i64)>,
}

fn uid(p: &Pod) -> String {
    p.metadata.uid.clone().unwrap_or_default()
}

/// Running containers' memory working sets: their cgroups are named by
/// the IDs in the pod's status.
fn memory(pod: &Pod, cgroup_root: &str) -> Vec<(String, i64)> {
    let uid = uid(pod);
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|s| {
            let id = s.container_id.as_deref()?.rsplit("://").next()?;
            let cg = format!("{}/{id}", observe::pod_cgroup(cgroup_root, &uid));
            Some((s.name.clone(), observe::cgroup_working_set(&cg)?))
        })
        .collect()
}

/// Writable layers + logs per container, + emptyDirs for the pod; bytes
/// when `inodes` is false.
async fn storage<R: ContainerRuntime>(
    paths: &Paths,
    runtime: &R,
    pod: &Pod,
    inodes: bool,
) -> PodUsage {
    let id = uid(pod);
    let pick = |(bytes, count): (i64, i64)| if inodes { count } else { bytes };
    let mut layers: Vec<(String, i64)> = Vec::new();
    for c in runtime
        .list(ids::LABEL_POD_UID, &id)
        .await
        .unwrap_or_default()
    {
        if c.labels.get(ids::LABEL_OWNER) != Some(&paths.owner) {
            continue;
        }
        let Some(name) = c.labels.get(ids::LABEL_CONTAINER_NAME).cloned() else {
            continue;
        };
        let used = match runtime.writable_layer(&c.id).await {
            Ok(u) => u.map_or(0, pick),
            Err(e) => {
                tracing::debug!(container = %c.id, error = %e, "writable layer usage unknown");
                0
            }
        };
        layers.push((name, used));
    }
    let logs = crate::paths::pod_log_dir(
        &paths.pod_log_dir,
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or(""),
        &id,
    );
    let empty_dirs = crate::sandbox::pod_sandbox::pod_dir(&paths.root, &id)
        .join("volumes")
        .join("empty-dir");
    let walked = tokio::task::spawn_blocking(move || {
        let mut per_container: Vec<(String, (i64, i64))> = std::fs::read_dir(&logs)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| {
                        (
                            e.file_name().to_string_lossy().into_owned(),
                            observe::du(&e.path()),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        per_container.sort();
        (per_container, observe::du(&empty_dirs))
    })
    .await;
    let Ok((logs, empty)) = walked else {
        return PodUsage::default();
    };
    // Every attempt's layer counts: it is all disk the pod holds.
    let mut containers: Vec<(String, i64)> = Vec::new();
    for (name, used) in layers {
        match containers.iter_mut().find(|(n, _)| *n == name) {
            Some((_, u)) => *u += used,
            None => containers.push((name, used)),
        }
    }
    for (name, used) in logs {
        match containers.iter_mut().find(|(n, _)| *n == name) {
            Some((_, u)) => *u += pick(used),
            None => containers.push((name, pick(used))),
        }
    }
    let total = containers.iter().map(|(_, u)| u).sum::<i64>() + pick(empty);
    PodUsage { total, containers }
}

/// Each pod's use of `resource`, in `pods`' order.
pub async fn measure<R: ContainerRuntime>(
    paths: &Paths,
    runtime: &R,
    obs: &Observations,
    pods: &[Arc<Pod>],
    resource: Resource,
) -> Vec<PodUsage> {
    let mut out = Vec::with_capacity(pods.len());
    for p in pods {
        let u = match resource {
            Resource::Memory => PodUsage {
                total: obs.pods.get(&uid(p)).copied().unwrap_or(0),
                containers: memory(p, &paths.cgroup_root),
            },
            Resource::EphemeralStorage => storage(paths, runtime, p, false).await,
            Resource::Inodes => storage(paths, runtime, p, true).await,
            Resource::Pids => PodUsage {
                total: observe::pod_processes(&paths.cgroup_root, &uid(p)).unwrap_or(0),
                containers: Vec::new(),
            },
        };
        out.push(u);
    }
    out
}
