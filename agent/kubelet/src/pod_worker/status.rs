//! The pod's status from the worker's state (container statuses, then
//! `status::compute`), written to the status record and, for pods from the
//! API, patched there when it changed.

use k8s_openapi::api::core::v1::Container;

use crate::admission;
use crate::pod_worker::pod::{name_of, restart_policy};
use crate::pod_worker::terminal::Terminal;
use crate::pod_worker::worker::{Exited, Slot, Worker};
use crate::runtime::container_runtime::ContainerRuntime;
use crate::status::compute::{self as status, State};

impl<R: ContainerRuntime> Worker<R> {
    pub(super) fn container_status(&self, c: &Container, init: bool) -> status::Container {
        let slot = self.slots.get(&c.name);
        let to_term = |e: &Exited| State::Terminated {
            code: e.code,
            signal: None,
            reason: e.reason.clone(),
            started: e.started,
            finished: e.finished,
            container_id: e.id.clone(),
        };
        let image = slot.and_then(|s| s.image.as_ref());
        let image_id = image
            .map(|i| {
                let repo = i
                    .name
                    .rsplit_once(':')
                    .filter(|(_, t)| !t.contains('/'))
                    .map_or(i.name.as_str(), |(r, _)| r);
                format!("{repo}@{}", i.manifest_digest)
            })
            .unwrap_or_default();
        let (state, last, container_id, ready, started) = match slot {
            Some(Slot {
                running: Some(r),
                last,
                ..
            }) => {
                let has_ready_probe = c.readiness_probe.is_some();
                let started = c.startup_probe.is_none() || r.startup_ok;
                (
                    State::Running { started: r.started },
                    last.as_ref().map(to_term),
                    Some(r.id.clone()),
                    !init && started && (r.ready || !has_ready_probe),
                    started,
                )
            }
            Some(Slot {
                last: Some(l),
                waiting: Some((reason, msg)),
                ..
            }) => (
                State::Waiting {
                    reason: reason.clone(),
                    message: msg.clone(),
                },
                Some(to_term(l)),
                Some(l.id.clone()),
                false,
                false,
            ),
            Some(Slot {
                last: Some(l),
                prev,
                ..
            }) => (
                to_term(l),
                prev.as_ref().map(to_term),
                Some(l.id.clone()),
                false,
                false,
            ),
            Some(Slot {
                waiting: Some((reason, msg)),
                ..
            }) => (
                State::Waiting {
                    reason: reason.clone(),
                    message: msg.clone(),
                },
                None,
                None,
                false,
                false,
            ),
            _ => (
                State::Waiting {
                    reason: if init || self.init_done() {
                        "ContainerCreating"
                    } else {
                        "PodInitializing"
                    }
                    .into(),
                    message: self.sandbox_error.clone(),
                },
                None,
                None,
                false,
                false,
            ),
        };
        let restart_count = slot
            .map(|s| s.next_attempt.saturating_sub(1) as i32)
            .unwrap_or(0);
        status::Container {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            image_id,
            container_id,
            state,
            last,
            ready,
            started,
            restart_count,
        }
    }

    pub(super) fn init_done(&self) -> bool {
        let (init, _) = self.containers();
        init.iter().all(|c| {
            self.slots
                .get(&c.name)
                .and_then(|s| s.last.as_ref())
                .is_some_and(|l| l.code == 0)
        })
    }

    pub fn status(&self) -> k8s_openapi::api::core::v1::PodStatus {
        let (init, app) = self.containers();
        let init: Vec<_> = init
            .iter()
            .map(|c| self.container_status(c, true))
            .collect();
        let app: Vec<_> = app
            .iter()
            .map(|c| self.container_status(c, false))
            .collect();
        let policy = restart_policy(&self.pod);
        let ips = self
            .sandbox
            .as_ref()
            .map(|s| {
                if s.host_network {
                    self.shared.host_ip.into_iter().collect()
                } else {
                    s.pod_ips.clone()
                }
            })
            .unwrap_or_default();
        let mut st = status::build(&status::Inputs {
            restart_policy: &policy,
            init: &init,
            app: &app,
            pod_ips: &ips,
            host_ip: self.shared.host_ip,
            start_time: self.start_time,
        });
        match &self.terminal {
            Some(Terminal::Evicted(message)) => status::evicted(&mut st, message),
            Some(Terminal::Rejected(r)) => {
                return status::rejected(admission::request::qos(&self.pod).name(), r)
            }
            None => {}
        }
        st
    }

    pub(super) async fn write_status(&mut self) {
        let status = self.status();
        let doc = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": self.pod.metadata.name,
                "namespace": self.pod.metadata.namespace,
                "uid": self.uid,
            },
            "status": status,
        });
        let bytes = serde_json::to_vec_pretty(&doc).unwrap_or_default();
        if bytes == self.last_status {
            return;
        }
        let path = self.shared.status_path(&self.pod);
        let tmp = path.with_extension("tmp");
        let r = std::fs::create_dir_all(path.parent().unwrap_or(&self.shared.opts.root_dir))
            .and_then(|_| std::fs::write(&tmp, &bytes))
            .and_then(|_| std::fs::rename(&tmp, &path));
        if let Err(e) = r {
            tracing::warn!(path = %path.display(), error = %e, "writing pod status failed");
            return;
        }
        if let (Some(api), true) = (&self.shared.api, crate::status::api::from_api(&self.pod)) {
            if let Err(e) = api.patch_status(&self.pod, &status).await {
                tracing::warn!(pod = %name_of(&self.pod), error = %e, "publishing pod status failed");
                return;
            }
            tracing::debug!(pod = %name_of(&self.pod), phase = ?status.phase, "pod status published");
        }
        self.last_status = bytes;
    }
}
