//! Keeps one pod worker per desired pod: admits new pods (oldest first,
//! once per UID) and starts their workers, or starts a worker that only
//! reports the refusal; tells workers of removed pods to terminate, and
//! runs the orphan sweep once the source has delivered its first complete
//! snapshot; hands the eviction manager's kills to the pod's worker. Holds
//! no lock across runtime calls; pods proceed in parallel.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::admission::admit::{self as admission, Ledger, Rejection};
use crate::events::build as events;
use crate::eviction::manager::Eviction;
use crate::gc;
use crate::pod_worker::worker::{Command, Worker};
use crate::runtime::container_runtime::ContainerRuntime;
use crate::sandbox::pod_sandbox as sandbox;
use crate::shared::Shared;
use crate::source::snapshot::Snapshot;

struct Handle {
    tx: mpsc::Sender<Command>,
    task: JoinHandle<()>,
    deleting: bool,
}

/// Failed or Succeeded: the pod holds no resources any more.
fn finished(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|ph| ph == "Failed" || ph == "Succeeded")
}

/// Admission's verdict on a pod that has no worker yet.
enum Verdict {
    Admit,
    /// Already decided earlier (by a previous agent, or it is finished or
    /// being deleted): start the worker without judging it again.
    Known,
    /// An API pod while the Node's labels are not known yet: judged on a
    /// later tick (kubelet, too, waits for its node informer; judging
    /// nodeSelector against the registration labels alone would refuse
    /// pods wrongly after a restart).
    Wait,
    Reject(Rejection),
}

fn judge<R>(
    shared: &Shared<R>,
    uid: &str,
    pod: &Pod,
    inputs: &admission::Inputs,
    ledger: &Ledger,
) -> Verdict {
    // A sandbox record means a previous agent admitted and started the
    // pod: it keeps running whatever changed since (kubelet admits once).
    if finished(pod)
        || pod.metadata.deletion_timestamp.is_some()
        || sandbox::load(&shared.opts.root_dir, uid).is_some()
    {
        return Verdict::Known;
    }
    let node = inputs.node.borrow().clone();
    if !node.synced && crate::status::api::from_api(pod) {
        return Verdict::Wait;
    }
    let pressure = *inputs.pressure.borrow();
    match admission::admit(pod, &node, inputs.allocatable, pressure, ledger) {
        Ok(()) => Verdict::Admit,
        Err(r) => Verdict::Reject(r),
    }
}

/// kubelet's rejection Event: the reason and message without the status's
/// "Pod was rejected: " prefix.
fn report_rejection<R>(shared: &Shared<R>, pod: &Pod, r: &Rejection) {
    tracing::warn!(
        pod = ?pod.metadata.name,
        namespace = ?pod.metadata.namespace,
        reason = %r.reason,
        message = %r.message,
        "pod rejected at admission"
    );
    if let (Some(api), true) = (&shared.api, crate::status::api::from_api(pod)) {
        let ev = events::build_for_pod(
            pod,
            events::WARNING,
            &r.reason,
            r.message.clone(),
            &shared.opts.node_name,
            jiff::Timestamp::now(),
        );
        api.events.record(ev);
    }
}

pub async fn run<R: ContainerRuntime>(
    shared: Arc<Shared<R>>,
    mut snapshots: watch::Receiver<Option<Arc<Snapshot>>>,
    mut evictions: mpsc::Receiver<Eviction>,
    inputs: admission::Inputs,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut workers: HashMap<String, Handle> = HashMap::new();
    // Admitted pods still holding their requests.
    let mut ledger = Ledger::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut since_sweep = Duration::ZERO;
    let mut synced = false;
    // Pods with a worker, shared with the sweep (never held across awaits).
    let active: Arc<Mutex<HashSet<String>>> = Arc::default();
    // Pods waiting for the Node's labels go as soon as they arrive.
    let mut node_changes = inputs.node.clone();
    let mut node_open = true;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            r = snapshots.changed() => if r.is_err() { break },
            r = node_changes.changed(), if node_open => node_open = r.is_ok(),
            Some(e) = evictions.recv() => {
                ledger.remove(&e.uid);
                if let Some(h) = workers.get(&e.uid).filter(|h| !h.deleting) {
                    let _ = h.tx.send(Command::Evict { message: e.message, grace: e.grace }).await;
                }
                continue;
            }
            _ = tick.tick() => {}
        }
        let snap = snapshots.borrow().clone();
        let Some(snap) = snap else { continue };
        workers.retain(|_, h| !h.task.is_finished());
        if let Ok(mut a) = active.lock() {
            a.retain(|uid| workers.contains_key(uid));
        }
        ledger.retain(|uid| {
            workers.contains_key(uid) && snap.pods.get(uid).is_some_and(|p| !finished(p))
        });
        // Oldest first, as kubelet admits: a later pod never takes the
        // room of an earlier one.
        let mut order: Vec<(&String, &Arc<Pod>)> = snap.pods.iter().collect();
        order.sort_by(|a, b| {
            let key = |p: &Pod| {
                (
                    p.metadata.creation_timestamp.as_ref().map(|t| t.0),
                    p.metadata.name.clone(),
                )
            };
            key(a.1).cmp(&key(b.1))
        });
        for (uid, pod) in order {
            match workers.get(uid) {
                Some(h) if !h.deleting => {
                    let _ = h.tx.try_send(Command::Update(pod.clone()));
                }
                // Still terminating an earlier incarnation: next tick.
                Some(_) => {}
                None => {
                    let verdict = judge(&shared, uid, pod, &inputs, &ledger);
                    if matches!(verdict, Verdict::Wait) {
                        continue;
                    }
                    if let Ok(mut a) = active.lock() {
                        a.insert(uid.clone());
                    }
                    let (tx, rx) = mpsc::channel(8);
                    let w = match verdict {
                        Verdict::Reject(r) => {
                            report_rejection(&shared, pod, &r);
                            Worker::rejected(shared.clone(), pod.clone(), r)
                        }
                        v => {
                            if matches!(v, Verdict::Admit) || !finished(pod) {
                                ledger.add(uid, pod);
                            }
                            Worker::new(shared.clone(), pod.clone())
                        }
                    };
                    let task = tokio::spawn(w.run(rx));
                    workers.insert(
                        uid.clone(),
                        Handle {
                            tx,
                            task,
                            deleting: false,
                        },
                    );
                }
            }
        }
        for (uid, h) in workers.iter_mut() {
            if !h.deleting && !snap.pods.contains_key(uid) {
                h.deleting = true;
                let _ = h.tx.send(Command::Delete).await;
            }
        }
        since_sweep += Duration::from_secs(1);
        // The sweep runs only against a complete view of desired pods.
        if !synced || since_sweep >= shared.opts.sweep_interval {
            synced = true;
            since_sweep = Duration::ZERO;
            let active = active.clone();
            let shared = shared.clone();
            tokio::spawn(async move { gc::sweep(&shared, &active).await });
        }
    }
    for h in workers.values() {
        h.task.abort();
    }
}
