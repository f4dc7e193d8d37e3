//! Adoption: what a previous agent left for this pod (the sandbox record,
//! running and exited containers) becomes the worker's state; running
//! containers keep running. Reads containerd; starts nothing.

use std::time::SystemTime;

use crate::error::Result;
use crate::ids;
use crate::pod_worker::labels::system_time_label;
use crate::pod_worker::pod::name_of;
use crate::pod_worker::worker::{Exited, Running, Worker};
use crate::runtime::container_runtime::{ContainerRuntime, TaskState};
use crate::sandbox::netns;
use crate::sandbox::pod_sandbox as sandbox;

impl<R: ContainerRuntime> Worker<R> {
    /// Picks up what a previous agent left: the sandbox record and the
    /// pod's containers (running ones keep running).
    pub(super) async fn adopt(&mut self) -> Result<()> {
        if let Some(rec) = sandbox::load(&self.shared.opts.root_dir, &self.uid) {
            let ns_ok = rec.net.as_ref().is_none_or(|n| netns::exists(n));
            if ns_ok {
                self.sandbox = Some(rec);
            }
        }
        let mut found = self
            .shared
            .runtime
            .list(ids::LABEL_POD_UID, &self.uid)
            .await?;
        found.retain(|c| c.labels.get(ids::LABEL_OWNER) == Some(&self.shared.owner));
        found.sort_by_key(|c| {
            c.labels
                .get(ids::LABEL_ATTEMPT)
                .and_then(|a| a.parse::<u32>().ok())
                .unwrap_or(0)
        });
        for c in found {
            let (Some(name), Some(attempt)) = (
                c.labels.get(ids::LABEL_CONTAINER_NAME).cloned(),
                c.labels
                    .get(ids::LABEL_ATTEMPT)
                    .and_then(|a| a.parse::<u32>().ok()),
            ) else {
                continue;
            };
            let started = c
                .labels
                .get(ids::LABEL_STARTED_AT)
                .and_then(|s| system_time_label(s))
                .unwrap_or_else(SystemTime::now);
            match c.task {
                TaskState::Running { .. } if self.sandbox.is_some() => {
                    let slot = self.slots.entry(name.clone()).or_default();
                    slot.next_attempt = attempt + 1;
                    slot.running = Some(Running {
                        id: c.id.clone(),
                        attempt,
                        started,
                        ready: false,
                        startup_ok: false,
                        killing: false,
                        tasks: Vec::new(),
                    });
                    self.watch(&name, &c.id, attempt);
                    tracing::info!(pod = %name_of(&self.pod), container = %name, id = %c.id, "adopted running container");
                }
                TaskState::Running { .. } | TaskState::Created => {
                    // No sandbox to run in any more: it goes.
                    self.shared.runtime.remove(&c.id).await?;
                }
                TaskState::Stopped { .. } | TaskState::None => {
                    let exit = match c.task {
                        TaskState::Stopped { .. } => self.shared.runtime.delete_task(&c.id).await?,
                        _ => None,
                    };
                    let code = exit.map(|e| e.code as i32).or_else(|| {
                        c.labels
                            .get(ids::LABEL_EXIT_CODE)
                            .and_then(|v| v.parse().ok())
                    });
                    let Some(code) = code else {
                        self.shared.runtime.remove(&c.id).await?;
                        continue;
                    };
                    let finished = exit.map(|e| e.at).or_else(|| {
                        c.labels
                            .get(ids::LABEL_FINISHED_AT)
                            .and_then(|s| system_time_label(s))
                    });
                    let slot = self.slots.entry(name.clone()).or_default();
                    slot.next_attempt = attempt + 1;
                    slot.prev = slot.last.take();
                    slot.last = Some(Exited {
                        id: c.id.clone(),
                        code,
                        reason: c
                            .labels
                            .get(ids::LABEL_EXIT_REASON)
                            .cloned()
                            .unwrap_or_else(|| {
                                if code == 0 { "Completed" } else { "Error" }.into()
                            }),
                        started,
                        finished: finished.unwrap_or_else(SystemTime::now),
                    });
                }
            }
        }
        Ok(())
    }
}
