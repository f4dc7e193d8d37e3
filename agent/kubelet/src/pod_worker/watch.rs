//! A running attempt's watchers (the waiter for its exit, the prober) and
//! what the worker does with their reports: record an exit, act on a
//! probe result (readiness, or a kill on a failed liveness/startup probe).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use crate::events::build as events;
use crate::ids;
use crate::pod_worker::labels::label_time;
use crate::pod_worker::pod::{grace, name_of};
use crate::pod_worker::worker::{Event, Exited, Worker, RETRY};
use crate::probes;
use crate::runtime::container_runtime::ContainerRuntime;

/// Reads the OOM kill counter of the container's memory cgroup (cgroup v1;
/// the cgroup still exists until the task is deleted).
fn oom_killed(cgroups_path: &str) -> bool {
    let p = PathBuf::from("/sys/fs/cgroup/memory")
        .join(cgroups_path.trim_start_matches('/'))
        .join("memory.oom_control");
    std::fs::read_to_string(p)
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("oom_kill "))
                .and_then(|n| n.trim().parse::<u64>().ok())
        })
        .is_some_and(|n| n > 0)
}

impl<R: ContainerRuntime> Worker<R> {
    /// Starts the waiter (and prober) of a running attempt.
    pub(super) fn watch(&mut self, name: &str, id: &str, attempt: u32) {
        let runtime = self.shared.runtime.clone();
        let tx = self.events_tx.clone();
        let cg = self.cgroups_path(id);
        let (idc, namec) = (id.to_string(), name.to_string());
        let waiter = tokio::spawn(async move {
            loop {
                match runtime.wait(&idc).await {
                    Ok(exit) => {
                        let oom = oom_killed(&cg);
                        let _ = tx
                            .send(Event::Exited {
                                name: namec,
                                attempt,
                                exit,
                                oom,
                            })
                            .await;
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(container = %idc, error = %e, "wait failed; retrying");
                        tokio::time::sleep(RETRY).await;
                    }
                }
            }
        });
        let (_, app) = self.containers();
        let (init, _) = self.containers();
        let spec = app
            .iter()
            .chain(init.iter())
            .find(|c| c.name == name)
            .cloned();
        let pod_ip = self.pod_ip();
        let mut tasks = vec![waiter];
        if let (Some(c), Some(ip)) = (spec, pod_ip) {
            if c.liveness_probe.is_some()
                || c.readiness_probe.is_some()
                || c.startup_probe.is_some()
            {
                tasks.push(tokio::spawn(probes::prober(
                    self.shared.runtime.clone(),
                    c,
                    attempt,
                    id.to_string(),
                    ip,
                    self.probe_tx.clone(),
                )));
            }
        }
        if let Some(r) = self.slots.get_mut(name).and_then(|s| s.running.as_mut()) {
            r.tasks.extend(tasks);
        }
    }

    pub(super) async fn handle(&mut self, ev: Event) {
        match ev {
            Event::Exited {
                name,
                attempt,
                exit,
                oom,
            } => {
                let Some(slot) = self.slots.get_mut(&name) else {
                    return;
                };
                let Some(run) = slot.running.take_if(|r| r.attempt == attempt) else {
                    return;
                };
                for t in &run.tasks {
                    t.abort();
                }
                let code = exit.code as i32;
                let reason = if oom {
                    "OOMKilled"
                } else if code == 0 {
                    "Completed"
                } else {
                    "Error"
                };
                let ran = exit.at.duration_since(run.started).unwrap_or_default();
                slot.backoff.exited(ran, Instant::now());
                slot.prev = slot.last.take();
                slot.last = Some(Exited {
                    id: run.id.clone(),
                    code,
                    reason: reason.to_string(),
                    started: run.started,
                    finished: exit.at,
                });
                tracing::info!(pod = %name_of(&self.pod), container = %name, code, reason, "container exited");
                // Recorded on the container so a restarted agent knows, then
                // the task goes (its shim exits).
                let labels = HashMap::from([
                    (ids::LABEL_EXIT_CODE.to_string(), code.to_string()),
                    (ids::LABEL_EXIT_REASON.to_string(), reason.to_string()),
                    (ids::LABEL_FINISHED_AT.to_string(), label_time(exit.at)),
                ]);
                if let Err(e) = self.shared.runtime.set_labels(&run.id, labels).await {
                    tracing::warn!(container = %run.id, error = %e, "recording exit failed");
                }
                if let Err(e) = self.shared.runtime.delete_task(&run.id).await {
                    tracing::warn!(container = %run.id, error = %e, "deleting task failed");
                }
            }
            Event::Probe(p) => {
                let pod = name_of(&self.pod);
                let grace = grace(&self.pod);
                let current = self
                    .slots
                    .get(&p.container)
                    .and_then(|s| s.running.as_ref())
                    .is_some_and(|r| r.attempt == p.attempt);
                if !current {
                    return;
                }
                let probe = match p.kind {
                    probes::Kind::Startup => "Startup",
                    probes::Kind::Liveness => "Liveness",
                    probes::Kind::Readiness => "Readiness",
                };
                if !p.ok {
                    // Every failed run, as kubelet's prober: the recorder
                    // folds repeats into one Event with a count.
                    self.event(
                        &p.container,
                        events::WARNING,
                        "Unhealthy",
                        format!("{probe} probe failed: {}", p.message),
                    );
                }
                let Some(run) = self
                    .slots
                    .get_mut(&p.container)
                    .and_then(|s| s.running.as_mut())
                    .filter(|r| r.attempt == p.attempt && p.changed)
                else {
                    return;
                };
                match (p.kind, p.ok) {
                    (probes::Kind::Readiness, ok) => run.ready = ok,
                    (probes::Kind::Startup, true) => run.startup_ok = true,
                    (probes::Kind::Liveness, true) => {}
                    (kind, false) => {
                        if !run.killing {
                            run.killing = true;
                            tracing::info!(pod = %pod, container = %p.container, ?kind, message = %p.message, "probe failed; restarting container");
                            let id = run.id.clone();
                            self.kill_in_background(&p.container, id, p.attempt, grace);
                            self.event(
                                &p.container,
                                events::NORMAL,
                                "Killing",
                                format!(
                                    "Container {} failed {} probe, will be restarted",
                                    p.container,
                                    probe.to_lowercase()
                                ),
                            );
                        }
                    }
                }
            }
        }
    }
}
