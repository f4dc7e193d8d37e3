//! One reconcile pass of the pod worker: the sandbox first, then init
//! containers one at a time, then app containers as the restart policy and
//! back-off allow; failures become waiting reasons and Events.

use std::time::Instant;

use k8s_openapi::api::core::v1::Container;

use crate::error::{Error, Result};
use crate::events::build as events;
use crate::ids;
use crate::pod::volumes;
use crate::pod_worker::pod::{name_of, restart_policy};
use crate::pod_worker::terminal::Terminal;
use crate::pod_worker::worker::{Worker, RESYNC, RETRY};
use crate::runtime::container_runtime::ContainerRuntime;
use crate::sandbox::netns;
use crate::sandbox::pod_sandbox as sandbox;
use std::time::Duration;

impl<R: ContainerRuntime> Worker<R> {
    /// One reconcile pass; returns when it wants to run again at the latest.
    pub(super) async fn sync(&mut self) -> Instant {
        let now = Instant::now();
        let mut wake = now + RESYNC;
        if let Some(t) = &self.terminal {
            let stopped = self.slots.values().all(|s| s.running.is_none());
            if matches!(t, Terminal::Evicted(_)) && stopped && !self.volumes_released {
                self.volumes_released = true;
                let dir = sandbox::pod_dir(&self.shared.opts.root_dir, &self.uid);
                volumes::remove_empty_dirs(&dir);
            }
            return wake;
        }
        if let Err(e) = self.ensure_sandbox().await {
            let msg = e.to_string();
            if self.sandbox_error.as_ref() != Some(&msg) {
                tracing::warn!(pod = %name_of(&self.pod), error = %msg, "pod sandbox not ready");
            }
            self.sandbox_error = Some(msg);
            return now + RETRY;
        }
        self.sandbox_error = None;
        self.refresh_volumes().await;
        if let Some(at) = self.volumes_wake(Instant::now()) {
            wake = wake.min(at);
        }
        let policy = restart_policy(&self.pod);
        let (init, app) = self.containers();
        // Init containers, one at a time, each to completion.
        for c in &init {
            let slot = self.slots.entry(c.name.clone()).or_default();
            if slot.running.is_some() {
                return wake;
            }
            match &slot.last {
                Some(l) if l.code == 0 => continue,
                Some(_) if policy == "Never" => return wake,
                _ => {}
            }
            if let Some(at) = slot.backoff.ready_at(now) {
                self.crash_looping(&c.name);
                return at.min(wake);
            }
            if let Err(e) = self.start(c, true).await {
                self.start_failed(c, e);
                return now + RETRY;
            }
            return wake;
        }
        for c in &app {
            let slot = self.slots.entry(c.name.clone()).or_default();
            if slot.running.is_some() {
                continue;
            }
            if let Some(l) = &slot.last {
                let restart = match policy.as_str() {
                    "Always" => true,
                    "OnFailure" => l.code != 0,
                    _ => false,
                };
                if !restart {
                    continue;
                }
            }
            if let Some(at) = slot.backoff.ready_at(now) {
                self.crash_looping(&c.name);
                wake = wake.min(at);
                continue;
            }
            if let Err(e) = self.start(c, false).await {
                self.start_failed(c, e);
                wake = wake.min(now + RETRY);
            }
        }
        wake
    }

    pub(super) fn start_failed(&mut self, c: &Container, e: Error) {
        let reason = match &e {
            Error::Image { message, .. } if message.contains("ErrImageNeverPull") => {
                "ErrImageNeverPull"
            }
            Error::InvalidImage { .. } => "InvalidImageName",
            Error::Image { .. } => "ErrImagePull",
            Error::PullBackOff { .. } => "ImagePullBackOff",
            Error::Config { .. } => "CreateContainerConfigError",
            // kubelet waits in ContainerCreating while a volume cannot be
            // set up, and says why in a FailedMount Event.
            Error::Mount { .. } => "ContainerCreating",
            _ => "CreateContainerError",
        };
        let slot = self.slots.entry(c.name.clone()).or_default();
        let msg = e.to_string();
        if let Error::Mount { .. } = &e {
            // About the pod, not a container; once per distinct message
            // (the correlator counts repeats of the same one).
            let changed = slot.waiting.as_ref().map(|w| &w.0) != Some(&reason.to_string())
                || self.volume_error.as_ref() != Some(&msg);
            slot.waiting = Some((reason.into(), None));
            if changed {
                tracing::warn!(pod = %name_of(&self.pod), container = %c.name, error = %msg, "volume setup failed");
                self.volume_error = Some(msg.clone());
                self.pod_event(events::WARNING, "FailedMount", msg);
            }
            return;
        }
        let changed = slot.waiting.as_ref().map(|w| &w.0) != Some(&reason.to_string());
        slot.waiting = Some((reason.into(), Some(msg.clone())));
        if changed {
            tracing::warn!(pod = %name_of(&self.pod), container = %c.name, error = %msg, "container start failed");
            let image = c.image.clone().unwrap_or_default();
            let (type_, why, message) = match reason {
                "ImagePullBackOff" => (
                    events::NORMAL,
                    "BackOff",
                    format!("Back-off pulling image {image:?}"),
                ),
                "ErrImagePull" => (
                    events::WARNING,
                    "Failed",
                    format!("Failed to pull image {image:?}: {msg}"),
                ),
                "InvalidImageName" => (events::WARNING, "InspectFailed", msg),
                _ => (events::WARNING, "Failed", msg),
            };
            self.event(&c.name, type_, why, message);
            // kubelet's container starter adds its own Event after the
            // image manager's, so describe shows e.g. "Error: InvalidImageName".
            if matches!(
                reason,
                "InvalidImageName" | "ErrImagePull" | "ImagePullBackOff"
            ) {
                self.event(
                    &c.name,
                    events::WARNING,
                    "Failed",
                    format!("Error: {reason}"),
                );
            }
        }
    }

    pub(super) async fn ensure_sandbox(&mut self) -> Result<()> {
        let opts = &self.shared.opts;
        let pod = self.pod.clone();
        let host_network = pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        let hostname = pod.metadata.name.clone().unwrap_or_default();
        if self.sandbox.is_none() {
            let sid = ids::sandbox_id(&self.shared.owner, &self.uid);
            let ns = netns::paths(
                &opts.netns_dir,
                &format!("{}{sid}", opts.netns_prefix),
                host_network,
            );
            let rec = sandbox::load(&opts.root_dir, &self.uid).unwrap_or(sandbox::Record {
                sandbox_id: sid,
                namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                name: hostname.clone(),
                uid: self.uid.clone(),
                host_network,
                net: ns.net,
                ipc: ns.ipc,
                uts: ns.uts,
                cni_result: None,
                pod_ips: Vec::new(),
            });
            // Recorded before anything is made, so a sweep can undo it.
            sandbox::save(&opts.root_dir, &rec)?;
            self.sandbox = Some(rec);
        }
        let Some(rec) = self.sandbox.as_mut() else {
            return Ok(());
        };
        if rec.host_network || rec.cni_result.is_none() {
            sandbox::ensure(&opts.root_dir, &self.shared.cni, rec, &hostname).await?;
            tracing::info!(pod = %name_of(&pod), ips = ?rec.pod_ips, "pod sandbox ready");
        }
        Ok(())
    }

    /// CrashLoopBackOff while the restart back-off runs; an Event once as
    /// the container enters it.
    pub(super) fn crash_looping(&mut self, name: &str) {
        let pod = name_of(&self.pod);
        let Some(slot) = self.slots.get_mut(name) else {
            return;
        };
        let fresh = slot
            .waiting
            .as_ref()
            .is_none_or(|w| w.0 != "CrashLoopBackOff");
        slot.waiting = Some(crash_loop(name, slot.backoff.delay()));
        if fresh {
            self.event(
                name,
                events::WARNING,
                "BackOff",
                format!("Back-off restarting failed container {name} in pod {pod}"),
            );
        }
    }
}

fn crash_loop(name: &str, delay: Duration) -> (String, Option<String>) {
    (
        "CrashLoopBackOff".into(),
        Some(format!(
            "back-off {}s restarting failed container={name}",
            delay.as_secs()
        )),
    )
}
