//! Stopping: one container (preStop, SIGTERM, grace, SIGKILL), eviction
//! of every container, graceful deletion of the pod, and removing
//! everything a pod left (also the sweep's way).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Container;

use crate::error::Result;
use crate::ids;
use crate::paths;
use crate::pod::hooks;
use crate::pod_worker::pod::{deleting, grace, name_of};
use crate::pod_worker::terminal::Terminal;
use crate::pod_worker::worker::Worker;
use crate::runtime::container_runtime::ContainerRuntime;
use crate::sandbox::pod_sandbox as sandbox;
use crate::shared::Shared;

impl<R: ContainerRuntime> Worker<R> {
    /// preStop, SIGTERM, wait for the grace period, SIGKILL; the waiter
    /// reports the exit as usual.
    pub(super) fn kill_in_background(&self, name: &str, id: String, attempt: u32, grace: Duration) {
        let runtime = self.shared.runtime.clone();
        let spec = self.spec_of(name);
        let ip = self.pod_ip();
        tracing::debug!(container = %name, attempt, "stopping container");
        tokio::spawn(async move {
            stop_container(runtime.as_ref(), spec.as_ref(), ip, &id, grace).await;
        });
    }

    /// Kills every running container (the waiters report the exits) and
    /// makes the pod terminal.
    pub(super) fn evict(&mut self, message: String, grace: Duration) {
        if self.terminal.is_some() {
            return;
        }
        tracing::warn!(pod = %name_of(&self.pod), %message, "pod evicted");
        self.terminal = Some(Terminal::Evicted(message));
        let mut kills = Vec::new();
        for (name, slot) in &mut self.slots {
            if let Some(r) = slot.running.as_mut().filter(|r| !r.killing) {
                r.killing = true;
                kills.push((name.clone(), r.id.clone(), r.attempt));
            }
        }
        for (name, id, attempt) in kills {
            self.kill_in_background(&name, id, attempt, grace);
        }
    }

    /// Graceful deletion: every running container gets preStop, SIGTERM and
    /// the grace period, then SIGKILL; then containers, sandbox and files go.
    pub(super) async fn terminate(&mut self) {
        let pod = name_of(&self.pod);
        let grace = grace(&self.pod);
        let ip = self.pod_ip();
        let mut stops = Vec::new();
        for (name, slot) in &mut self.slots {
            if let Some(r) = slot.running.take() {
                for t in &r.tasks {
                    t.abort();
                }
                let runtime = self.shared.runtime.clone();
                let spec = self
                    .pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.containers.iter().find(|c| &c.name == name).cloned());
                stops.push(tokio::spawn(async move {
                    stop_container(runtime.as_ref(), spec.as_ref(), ip, &r.id, grace).await;
                }));
            }
        }
        for s in stops {
            let _ = s.await;
        }
        if let Err(e) = remove_pod(&self.shared, &self.uid).await {
            tracing::warn!(pod = %pod, error = %e, "pod cleanup incomplete; the sweep retries");
        }
        let _ = std::fs::remove_file(self.shared.status_path(&self.pod));
        if let (Some(api), true) = (&self.shared.api, crate::status::api::from_api(&self.pod)) {
            if deleting(&self.pod) {
                if let Err(e) = api.delete_final(&self.pod).await {
                    tracing::warn!(pod = %pod, error = %e, "final delete failed");
                }
            }
        }
    }
}

/// preStop (within the grace period), SIGTERM, wait out the rest of the
/// grace period, SIGKILL.
pub async fn stop_container<R: ContainerRuntime>(
    runtime: &R,
    spec: Option<&Container>,
    pod_ip: Option<IpAddr>,
    id: &str,
    grace: Duration,
) {
    let deadline = Instant::now() + grace;
    if let (Some(c), Some(ip)) = (spec, pod_ip) {
        if let Some(h) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()) {
            if let Err(e) = hooks::run(h, c, ip, id, runtime, grace).await {
                tracing::warn!(container = %id, error = %e, "preStop hook failed");
            }
        }
    }
    let _ = runtime.kill(id, libc::SIGTERM as u32).await;
    let left = deadline.saturating_duration_since(Instant::now());
    if tokio::time::timeout(left, runtime.wait(id)).await.is_err() {
        let _ = runtime.kill(id, libc::SIGKILL as u32).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), runtime.wait(id)).await;
    }
}

/// Every container of the pod, its cgroups, its sandbox (CNI DEL,
/// namespaces) and its files. Used by deletion and by the sweep.
pub async fn remove_pod<R: ContainerRuntime>(shared: &Shared<R>, uid: &str) -> Result<()> {
    for c in shared.runtime.list(ids::LABEL_POD_UID, uid).await? {
        if c.labels.get(ids::LABEL_OWNER) == Some(&shared.owner) {
            shared.runtime.remove(&c.id).await?;
        }
    }
    let root = &shared.opts.root_dir;
    if let Some(rec) = sandbox::load(root, uid) {
        sandbox::teardown(root, &shared.cni, &rec).await?;
        let logs = paths::pod_log_dir(&shared.opts.pod_log_dir, &rec.namespace, &rec.name, uid);
        let _ = std::fs::remove_dir_all(logs);
    } else {
        let _ = std::fs::remove_dir_all(sandbox::pod_dir(root, uid));
    }
    if let Ok(roots) = std::fs::read_dir("/sys/fs/cgroup") {
        for r in roots.filter_map(|e| e.ok()) {
            let d = r
                .path()
                .join(shared.opts.cgroup_root.trim_matches('/'))
                .join(format!("pod{uid}"));
            let _ = std::fs::remove_dir(d);
        }
    }
    Ok(())
}
