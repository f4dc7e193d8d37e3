//! Keeps one pod worker per desired pod: starts workers for new pods,
//! tells workers of removed pods to terminate, and runs the orphan sweep
//! once the source has delivered its first complete snapshot; hands the
//! eviction manager's kills to the pod's worker. Holds no lock across
//! runtime calls; pods proceed in parallel.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::kubelet::eviction::Eviction;
use crate::kubelet::pod_worker::{Command, Worker};
use crate::kubelet::runtime::ContainerRuntime;
use crate::kubelet::source::Snapshot;
use crate::kubelet::{gc, Shared};

struct Handle {
    tx: mpsc::Sender<Command>,
    task: JoinHandle<()>,
    deleting: bool,
}

pub async fn run<R: ContainerRuntime>(
    shared: Arc<Shared<R>>,
    mut snapshots: watch::Receiver<Option<Arc<Snapshot>>>,
    mut evictions: mpsc::Receiver<Eviction>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut workers: HashMap<String, Handle> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut since_sweep = Duration::ZERO;
    let mut synced = false;
    // Pods with a worker, shared with the sweep (never held across awaits).
    let active: Arc<Mutex<HashSet<String>>> = Arc::default();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            r = snapshots.changed() => if r.is_err() { break },
            Some(e) = evictions.recv() => {
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
        for (uid, pod) in &snap.pods {
            match workers.get(uid) {
                Some(h) if !h.deleting => {
                    let _ = h.tx.try_send(Command::Update(pod.clone()));
                }
                // Still terminating an earlier incarnation: next tick.
                Some(_) => {}
                None => {
                    if let Ok(mut a) = active.lock() {
                        a.insert(uid.clone());
                    }
                    let (tx, rx) = mpsc::channel(8);
                    let w = Worker::new(shared.clone(), pod.clone());
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
