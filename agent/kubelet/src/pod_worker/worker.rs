//! The pod worker's state: per container a slot (the running attempt, the
//! last exits, back-offs, the waiting reason), the pod's sandbox record and
//! the channels its watchers report on. State and small accessors only;
//! the work is in the sibling files.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::admission::admit::Rejection;
use crate::events::build as events;
use crate::pod::env::PodFields;
use crate::pod_worker::backoff::Backoff;
use crate::pod_worker::terminal::{terminal_from_status, Terminal};
use crate::probes;
use crate::runtime::container_runtime::{ContainerRuntime, Exit, ImageInfo};
use crate::sandbox::pod_sandbox as sandbox;
use crate::shared::Shared;
use crate::token::pod_tokens::PodTokens;

pub(super) const RESYNC: Duration = Duration::from_secs(10);

pub(super) const RETRY: Duration = Duration::from_secs(2);

pub enum Command {
    Update(Arc<Pod>),
    Delete,
    /// Node-pressure eviction: kill every container within `grace`, start
    /// nothing again, report the pod Failed/Evicted with `message`.
    Evict {
        message: String,
        grace: Duration,
    },
}

pub(super) enum Event {
    Exited {
        name: String,
        attempt: u32,
        exit: Exit,
        oom: bool,
    },
    Probe(probes::Event),
}

pub(super) struct Running {
    pub(super) id: String,
    pub(super) attempt: u32,
    pub(super) started: SystemTime,
    pub(super) ready: bool,
    pub(super) startup_ok: bool,
    pub(super) killing: bool,
    pub(super) tasks: Vec<JoinHandle<()>>,
}

#[derive(Clone)]
pub(super) struct Exited {
    pub(super) id: String,
    pub(super) code: i32,
    pub(super) reason: String,
    pub(super) started: SystemTime,
    pub(super) finished: SystemTime,
}

#[derive(Default)]
pub(super) struct Slot {
    pub(super) running: Option<Running>,
    pub(super) last: Option<Exited>,
    pub(super) prev: Option<Exited>,
    /// Attempt number the next start uses (= restartCount after it).
    pub(super) next_attempt: u32,
    pub(super) backoff: Backoff,
    pub(super) waiting: Option<(String, Option<String>)>,
    pub(super) image: Option<ImageInfo>,
    /// Image pull back-off and the last pull error it holds back.
    pub(super) pull_backoff: Backoff,
    pub(super) pull_error: Option<String>,
}

pub struct Worker<R: ContainerRuntime> {
    pub(super) shared: Arc<Shared<R>>,
    pub(super) pod: Arc<Pod>,
    pub(super) uid: String,
    pub(super) slots: HashMap<String, Slot>,
    pub(super) sandbox: Option<sandbox::Record>,
    pub(super) sandbox_error: Option<String>,
    pub(super) start_time: SystemTime,
    pub(super) events_tx: mpsc::Sender<Event>,
    pub(super) events_rx: mpsc::Receiver<Event>,
    pub(super) probe_tx: mpsc::Sender<probes::Event>,
    pub(super) probe_rx: mpsc::Receiver<probes::Event>,
    pub(super) last_status: Vec<u8>,
    /// Set once the kubelet decided the pod never runs again.
    pub(super) terminal: Option<Terminal>,
    /// An evicted pod's emptyDir volumes are gone (kubelet tears down the
    /// volumes of terminated pods: disk pressure must be able to clear).
    pub(super) volumes_released: bool,
    /// The service-account tokens of the pod's projected volumes.
    pub(super) tokens: PodTokens,
    /// When the written volumes are next rewritten from their sources
    /// (None: not yet written by this worker).
    pub(super) volume_sync_at: Option<Instant>,
    /// The last volume refresh failure, logged once until it changes.
    pub(super) volume_error: Option<String>,
}

impl<R: ContainerRuntime> Worker<R> {
    pub fn new(shared: Arc<Shared<R>>, pod: Arc<Pod>) -> Self {
        let (events_tx, events_rx) = mpsc::channel(64);
        let (probe_tx, probe_rx) = mpsc::channel(64);
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let terminal = terminal_from_status(&pod);
        Self {
            shared,
            pod,
            uid,
            slots: HashMap::new(),
            sandbox: None,
            sandbox_error: None,
            start_time: SystemTime::now(),
            events_tx,
            events_rx,
            probe_tx,
            probe_rx,
            last_status: Vec::new(),
            terminal,
            volumes_released: false,
            tokens: PodTokens::default(),
            volume_sync_at: None,
            volume_error: None,
        }
    }

    /// A worker for a pod admission refused: it only reports the refusal
    /// and, once the pod is deleted, cleans up.
    pub fn rejected(shared: Arc<Shared<R>>, pod: Arc<Pod>, r: Rejection) -> Self {
        let mut w = Self::new(shared, pod);
        w.terminal = Some(Terminal::Rejected(r));
        w
    }

    pub(super) fn containers(&self) -> (Vec<Container>, Vec<Container>) {
        let spec = self.pod.spec.clone().unwrap_or_default();
        (spec.init_containers.unwrap_or_default(), spec.containers)
    }

    pub(super) fn cgroups_path(&self, id: &str) -> String {
        format!(
            "/{}/pod{}/{id}",
            self.shared.opts.cgroup_root.trim_matches('/'),
            self.uid
        )
    }

    pub(super) fn pod_ip(&self) -> Option<IpAddr> {
        match &self.sandbox {
            Some(s) if s.host_network => self.shared.host_ip,
            Some(s) => s.pod_ips.first().copied(),
            None => None,
        }
    }

    pub(super) fn spec_of(&self, name: &str) -> Option<Container> {
        let (init, app) = self.containers();
        init.into_iter().chain(app).find(|c| c.name == name)
    }

    pub(super) fn fields(&self) -> PodFields {
        PodFields {
            pod_ip: self.pod_ip().map(|i| i.to_string()).unwrap_or_default(),
            host_ip: self
                .shared
                .host_ip
                .map(|i| i.to_string())
                .unwrap_or_default(),
            node_name: self.shared.opts.node_name.clone(),
        }
    }

    /// Reports an Event about the pod itself (pods from the API only).
    pub(super) fn pod_event(&self, type_: &str, reason: &str, message: String) {
        if let (Some(api), true) = (&self.shared.api, crate::status::api::from_api(&self.pod)) {
            api.events.record(events::build_for_pod(
                &self.pod,
                type_,
                reason,
                message,
                &self.shared.opts.node_name,
                jiff::Timestamp::now(),
            ));
        }
    }

    /// Reports an Event about `container` (pods from the API only).
    pub(super) fn event(&self, container: &str, type_: &str, reason: &str, message: String) {
        if let (Some(api), true) = (&self.shared.api, crate::status::api::from_api(&self.pod)) {
            let ev = events::build(
                &self.pod,
                container,
                type_,
                reason,
                message,
                &self.shared.opts.node_name,
                jiff::Timestamp::now(),
            );
            api.events.record(ev);
        }
    }
}
