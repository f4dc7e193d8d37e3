//! One task per pod: compares the pod's spec with the containers that
//! exist and changes only the difference (level-triggered), reacting to
//! task exits, probe results and the manager's updates. Owns the pod's
//! sandbox, containers, restarts and status; never touches another pod's.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::kubelet::admission::{self, Rejection, REJECTED_PREFIX};
use crate::kubelet::backoff::Backoff;
use crate::kubelet::env::{self, Objects, PodFields};
use crate::kubelet::error::{Error, Result};
use crate::kubelet::events;
use crate::kubelet::runtime::{
    registry, ContainerRuntime, CreateRequest, Exit, ImageInfo, TaskState,
};
use crate::kubelet::status::{self, State};
use crate::kubelet::{assemble, hooks, ids, logs, netns, probes, sandbox, volumes, Shared};

const RESYNC: Duration = Duration::from_secs(10);
const RETRY: Duration = Duration::from_secs(2);

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

enum Event {
    Exited {
        name: String,
        attempt: u32,
        exit: Exit,
        oom: bool,
    },
    Probe(probes::Event),
}

struct Running {
    id: String,
    attempt: u32,
    started: SystemTime,
    ready: bool,
    startup_ok: bool,
    killing: bool,
    tasks: Vec<JoinHandle<()>>,
}

#[derive(Clone)]
struct Exited {
    id: String,
    code: i32,
    reason: String,
    started: SystemTime,
    finished: SystemTime,
}

#[derive(Default)]
struct Slot {
    running: Option<Running>,
    last: Option<Exited>,
    prev: Option<Exited>,
    /// Attempt number the next start uses (= restartCount after it).
    next_attempt: u32,
    backoff: Backoff,
    waiting: Option<(String, Option<String>)>,
    image: Option<ImageInfo>,
    /// Image pull back-off and the last pull error it holds back.
    pull_backoff: Backoff,
    pull_error: Option<String>,
}

pub struct Worker<R: ContainerRuntime> {
    shared: Arc<Shared<R>>,
    pod: Arc<Pod>,
    uid: String,
    slots: HashMap<String, Slot>,
    sandbox: Option<sandbox::Record>,
    sandbox_error: Option<String>,
    start_time: SystemTime,
    events_tx: mpsc::Sender<Event>,
    events_rx: mpsc::Receiver<Event>,
    probe_tx: mpsc::Sender<probes::Event>,
    probe_rx: mpsc::Receiver<probes::Event>,
    last_status: Vec<u8>,
    /// Set once the kubelet decided the pod never runs again.
    terminal: Option<Terminal>,
    /// An evicted pod's emptyDir volumes are gone (kubelet tears down the
    /// volumes of terminated pods: disk pressure must be able to clear).
    volumes_released: bool,
}

/// Why the kubelet will not run a pod (again).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Terminal {
    /// Node-pressure eviction, with its message.
    Evicted(String),
    /// Refused at admission; nothing was ever started.
    Rejected(Rejection),
}

/// A pod the kubelet evicted or refused stays so across agent restarts:
/// its status says so.
fn terminal_from_status(pod: &Pod) -> Option<Terminal> {
    let s = pod.status.as_ref()?;
    if s.phase.as_deref() != Some("Failed") {
        return None;
    }
    let reason = s.reason.clone()?;
    let message = s.message.clone().unwrap_or_default();
    match message.strip_prefix(REJECTED_PREFIX) {
        Some(m) => Some(Terminal::Rejected(Rejection {
            reason,
            message: m.to_string(),
        })),
        None => (reason == "Evicted").then_some(Terminal::Evicted(message)),
    }
}

fn name_of(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

fn restart_policy(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_else(|| "Always".into())
}

fn grace(pod: &Pod) -> Duration {
    Duration::from_secs(
        pod.metadata
            .deletion_grace_period_seconds
            .or_else(|| {
                pod.spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30)
            .max(0) as u64,
    )
}

fn deleting(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

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

fn system_time_label(s: &str) -> Option<SystemTime> {
    let secs: f64 = s.parse().ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs_f64(secs))
}

fn label_time(t: SystemTime) -> String {
    format!(
        "{:.3}",
        t.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64()
    )
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
        }
    }

    /// A worker for a pod admission refused: it only reports the refusal
    /// and, once the pod is deleted, cleans up.
    pub fn rejected(shared: Arc<Shared<R>>, pod: Arc<Pod>, r: Rejection) -> Self {
        let mut w = Self::new(shared, pod);
        w.terminal = Some(Terminal::Rejected(r));
        w
    }

    fn containers(&self) -> (Vec<Container>, Vec<Container>) {
        let spec = self.pod.spec.clone().unwrap_or_default();
        (spec.init_containers.unwrap_or_default(), spec.containers)
    }

    fn cgroups_path(&self, id: &str) -> String {
        format!(
            "/{}/pod{}/{id}",
            self.shared.opts.cgroup_root.trim_matches('/'),
            self.uid
        )
    }

    fn pod_ip(&self) -> Option<IpAddr> {
        match &self.sandbox {
            Some(s) if s.host_network => self.shared.host_ip,
            Some(s) => s.pod_ips.first().copied(),
            None => None,
        }
    }

    /// Runs until the pod is deleted and cleaned up.
    pub async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let pod_name = name_of(&self.pod);
        if let Err(e) = self.adopt().await {
            tracing::warn!(pod = %pod_name, error = %e, "adopting existing containers failed");
        }
        while !deleting(&self.pod) {
            let wake = self.sync().await;
            self.write_status().await;
            let deadline = tokio::time::Instant::from_std(wake);
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(Command::Update(p)) => self.pod = p,
                    Some(Command::Evict { message, grace }) => self.evict(message, grace),
                    Some(Command::Delete) | None => break,
                },
                Some(ev) = self.events_rx.recv() => self.handle(ev).await,
                Some(ev) = self.probe_rx.recv() => self.handle(Event::Probe(ev)).await,
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
        self.terminate().await;
        tracing::info!(pod = %pod_name, "pod removed");
    }

    /// Picks up what a previous agent left: the sandbox record and the
    /// pod's containers (running ones keep running).
    async fn adopt(&mut self) -> Result<()> {
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

    /// Starts the waiter (and prober) of a running attempt.
    fn watch(&mut self, name: &str, id: &str, attempt: u32) {
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

    async fn handle(&mut self, ev: Event) {
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

    /// Reports an Event about `container` (pods from the API only).
    fn event(&self, container: &str, type_: &str, reason: &str, message: String) {
        if let (Some(api), true) = (&self.shared.api, crate::kubelet::api::from_api(&self.pod)) {
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

    /// CrashLoopBackOff while the restart back-off runs; an Event once as
    /// the container enters it.
    fn crash_looping(&mut self, name: &str) {
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

    fn spec_of(&self, name: &str) -> Option<Container> {
        let (init, app) = self.containers();
        init.into_iter().chain(app).find(|c| c.name == name)
    }

    /// preStop, SIGTERM, wait for the grace period, SIGKILL; the waiter
    /// reports the exit as usual.
    fn kill_in_background(&self, name: &str, id: String, attempt: u32, grace: Duration) {
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
    fn evict(&mut self, message: String, grace: Duration) {
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

    /// One reconcile pass; returns when it wants to run again at the latest.
    async fn sync(&mut self) -> Instant {
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
                return at;
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

    fn start_failed(&mut self, c: &Container, e: Error) {
        let reason = match &e {
            Error::Image { message, .. } if message.contains("ErrImageNeverPull") => {
                "ErrImageNeverPull"
            }
            Error::InvalidImage { .. } => "InvalidImageName",
            Error::Image { .. } => "ErrImagePull",
            Error::PullBackOff { .. } => "ImagePullBackOff",
            Error::Config { .. } => "CreateContainerConfigError",
            _ => "CreateContainerError",
        };
        let slot = self.slots.entry(c.name.clone()).or_default();
        let msg = e.to_string();
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

    async fn ensure_sandbox(&mut self) -> Result<()> {
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

    fn fields(&self) -> PodFields {
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

    async fn image(&mut self, c: &Container) -> Result<ImageInfo> {
        let name = c.image.clone().unwrap_or_default();
        // Before the pull policy, as kubelet: never looked up or pulled.
        if let Some(message) = crate::kubelet::image_ref::invalid(&name) {
            return Err(Error::InvalidImage { message });
        }
        let policy = c.image_pull_policy.as_deref().unwrap_or("IfNotPresent");
        let cached = self.slots.get(&c.name).and_then(|s| s.image.clone());
        if let Some(i) = cached.filter(|i| i.name == name && policy != "Always") {
            return Ok(i);
        }
        let present = if policy == "Always" {
            None
        } else {
            self.shared.runtime.image(&name).await?
        };
        if let Some(i) = present {
            let slot = self.slots.entry(c.name.clone()).or_default();
            slot.image = Some(i.clone());
            return Ok(i);
        }
        if policy == "Never" {
            return Err(Error::Image {
                image: name,
                message: "ErrImageNeverPull: not present and imagePullPolicy is Never".into(),
            });
        }
        let now = Instant::now();
        if let Some(slot) = self.slots.get(&c.name) {
            if slot.pull_backoff.ready_at(now).is_some() {
                return Err(Error::PullBackOff {
                    image: name,
                    last: slot.pull_error.clone().unwrap_or_default(),
                });
            }
        }
        let credentials = self.pull_credentials().await;
        let pulled = self.shared.runtime.pull(&name, &credentials).await;
        let slot = self.slots.entry(c.name.clone()).or_default();
        match pulled {
            Ok(i) => {
                slot.pull_backoff = Backoff::default();
                slot.pull_error = None;
                slot.image = Some(i.clone());
                Ok(i)
            }
            Err(e) => {
                slot.pull_backoff.failed(now);
                slot.pull_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// Registry credentials from the pod's imagePullSecrets, in order;
    /// a missing or malformed secret is skipped (the pull then runs
    /// anonymously and the registry's refusal says why), as kubelet does.
    async fn pull_credentials(&self) -> registry::Credentials {
        let mut credentials = registry::Credentials::default();
        let pod = &self.pod;
        let refs = pod
            .spec
            .as_ref()
            .and_then(|s| s.image_pull_secrets.clone())
            .unwrap_or_default();
        if refs.is_empty() {
            return credentials;
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let objects = match (&self.shared.api, crate::kubelet::api::from_api(pod)) {
            (Some(api), true) => match api.objects_for(pod).await {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(pod = %name_of(pod), error = %e, "reading imagePullSecrets");
                    return credentials;
                }
            },
            _ => self.shared.objects.clone(),
        };
        for r in refs {
            let Some(secret) = objects.secret(ns, &r.name) else {
                tracing::warn!(pod = %name_of(pod), secret = %r.name, "imagePullSecret not found");
                continue;
            };
            let data: std::collections::HashMap<String, Vec<u8>> = secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            if let Err(e) = credentials.add_secret(&data) {
                tracing::warn!(pod = %name_of(pod), secret = %r.name, error = %e, "unusable imagePullSecret");
            }
        }
        credentials
    }

    async fn start(&mut self, c: &Container, init: bool) -> Result<()> {
        let t0 = Instant::now();
        let image = self.image(c).await?;
        let Some(rec) = self.sandbox.clone() else {
            return Ok(());
        };
        let opts = self.shared.opts.clone();
        let pod = self.pod.clone();
        let fields = self.fields();
        let pod_dir = sandbox::pod_dir(&opts.root_dir, &self.uid);
        let objects = match (&self.shared.api, crate::kubelet::api::from_api(&pod)) {
            (Some(api), true) => api.objects_for(&pod).await?,
            _ => self.shared.objects.clone(),
        };
        let vols = volumes::prepare(&pod, &pod_dir, &fields, &objects)?;
        let env =
            env::build(&pod, c, &image.env, &fields, &objects).map_err(|e| Error::Config {
                pod: name_of(&pod),
                message: e.0,
            })?;
        let etc = sandbox::write_etc(
            &opts.root_dir,
            &rec,
            pod.metadata.name.as_deref().unwrap_or(""),
            &opts.cluster_dns,
            &opts.cluster_domain,
        )?;
        let slot = self.slots.entry(c.name.clone()).or_default();
        let attempt = slot.next_attempt;
        let id = ids::container_id(&self.shared.owner, &self.uid, &c.name, attempt);
        let cgroups_path = format!(
            "/{}/pod{}/{id}",
            opts.cgroup_root.trim_matches('/'),
            self.uid
        );
        let input = assemble::build(assemble::Parts {
            pod: &pod,
            container: c,
            image: &image,
            env,
            volume_mounts: volumes::mounts(&pod, c, &vols)?,
            etc: &etc,
            namespaces: &rec.namespaces(),
            cgroups_path,
        });
        let now = SystemTime::now();
        let labels = HashMap::from([
            (ids::LABEL_OWNER.to_string(), self.shared.owner.clone()),
            (ids::LABEL_POD_UID.to_string(), self.uid.clone()),
            (
                ids::LABEL_POD_NAME.to_string(),
                pod.metadata.name.clone().unwrap_or_default(),
            ),
            (
                ids::LABEL_POD_NAMESPACE.to_string(),
                pod.metadata.namespace.clone().unwrap_or_default(),
            ),
            (ids::LABEL_CONTAINER_NAME.to_string(), c.name.clone()),
            (ids::LABEL_ATTEMPT.to_string(), attempt.to_string()),
            (ids::LABEL_INIT.to_string(), init.to_string()),
            (ids::LABEL_STARTED_AT.to_string(), label_time(now)),
        ]);
        // A leftover of a failed earlier try of this very attempt goes first.
        self.shared.runtime.remove(&id).await?;
        self.shared
            .runtime
            .create(CreateRequest {
                id: id.clone(),
                image: image.clone(),
                spec: crate::kubelet::spec::build(&input),
                labels,
            })
            .await?;
        let log_dir = logs::pod_log_dir(
            &opts.pod_log_dir,
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            pod.metadata.name.as_deref().unwrap_or(""),
            &self.uid,
        );
        let log = logs::container_log_path(&log_dir, &c.name, attempt);
        if let Err(e) = self.shared.runtime.start(&id, &log).await {
            let _ = self.shared.runtime.remove(&id).await;
            return Err(e);
        }
        let slot = self.slots.entry(c.name.clone()).or_default();
        slot.next_attempt = attempt + 1;
        slot.waiting = None;
        slot.image = Some(image);
        let older = slot.prev.take();
        slot.running = Some(Running {
            id: id.clone(),
            attempt,
            started: now,
            ready: false,
            startup_ok: false,
            killing: false,
            tasks: Vec::new(),
        });
        tracing::info!(pod = %name_of(&pod), container = %c.name, id = %id, attempt, elapsed_ms = t0.elapsed().as_millis() as u64, "container started");
        self.watch(&c.name, &id, attempt);
        // Only the latest exited attempt is kept (for lastState).
        if let Some(old) = older {
            if !init {
                let _ = self.shared.runtime.remove(&old.id).await;
            }
        }
        if let Some(h) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
            let ip = self.pod_ip().unwrap_or(IpAddr::from([127, 0, 0, 1]));
            let budget = grace(&pod).max(Duration::from_secs(1));
            if let Err(msg) = hooks::run(h, c, ip, &id, self.shared.runtime.as_ref(), budget).await
            {
                tracing::warn!(pod = %name_of(&pod), container = %c.name, error = %msg, "postStart hook failed; killing container");
                if let Some(r) = self.slots.get_mut(&c.name).and_then(|s| s.running.as_mut()) {
                    r.killing = true;
                }
                self.kill_in_background(&c.name, id, attempt, grace(&pod));
            }
        }
        Ok(())
    }

    fn container_status(&self, c: &Container, init: bool) -> status::Container {
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

    fn init_done(&self) -> bool {
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

    async fn write_status(&mut self) {
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
        if let (Some(api), true) = (&self.shared.api, crate::kubelet::api::from_api(&self.pod)) {
            if let Err(e) = api.patch_status(&self.pod, &status).await {
                tracing::warn!(pod = %name_of(&self.pod), error = %e, "publishing pod status failed");
                return;
            }
            tracing::debug!(pod = %name_of(&self.pod), phase = ?status.phase, "pod status published");
        }
        self.last_status = bytes;
    }

    /// Graceful deletion: every running container gets preStop, SIGTERM and
    /// the grace period, then SIGKILL; then containers, sandbox and files go.
    async fn terminate(&mut self) {
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
        if let (Some(api), true) = (&self.shared.api, crate::kubelet::api::from_api(&self.pod)) {
            if deleting(&self.pod) {
                if let Err(e) = api.delete_final(&self.pod).await {
                    tracing::warn!(pod = %pod, error = %e, "final delete failed");
                }
            }
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
        let logs = logs::pod_log_dir(&shared.opts.pod_log_dir, &rec.namespace, &rec.name, uid);
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with_status(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "status": status})).unwrap()
    }

    #[test]
    fn evicted_and_refused_pods_stay_so_across_restarts() {
        let refused = with_status(json!({"phase": "Failed", "reason": "OutOfcpu",
            "message": "Pod was rejected: Node didn't have enough resource: cpu, requested: 3000, used: 500, capacity: 2000"}));
        assert_eq!(
            terminal_from_status(&refused),
            Some(Terminal::Rejected(Rejection {
                reason: "OutOfcpu".into(),
                message: "Node didn't have enough resource: cpu, requested: 3000, used: 500, capacity: 2000".into(),
            }))
        );
        let evicted = with_status(json!({"phase": "Failed", "reason": "Evicted",
            "message": "The node was low on resource: memory. "}));
        assert_eq!(
            terminal_from_status(&evicted),
            Some(Terminal::Evicted(
                "The node was low on resource: memory. ".into()
            ))
        );
        // A pod whose containers failed is not the kubelet's decision.
        let failed = with_status(json!({"phase": "Failed"}));
        assert_eq!(terminal_from_status(&failed), None);
        let running = with_status(json!({"phase": "Running", "reason": "Evicted"}));
        assert_eq!(terminal_from_status(&running), None);
    }
}
