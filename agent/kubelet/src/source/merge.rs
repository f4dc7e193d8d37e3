//! Combines the snapshots of several sources into one: the union of their
//! pods, published once every source has delivered its first snapshot.

use std::sync::Arc;

use tokio::sync::watch;

use super::snapshot::Snapshot;

pub async fn run(
    mut inputs: Vec<watch::Receiver<Option<Arc<Snapshot>>>>,
    tx: watch::Sender<Option<Arc<Snapshot>>>,
) {
    loop {
        let snaps: Vec<Option<Arc<Snapshot>>> = inputs
            .iter_mut()
            .map(|r| r.borrow_and_update().clone())
            .collect();
        if snaps.iter().all(Option::is_some) {
            let mut all = Snapshot::default();
            for s in snaps.into_iter().flatten() {
                all.pods
                    .extend(s.pods.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            if tx.send(Some(Arc::new(all))).is_err() {
                return;
            }
        }
        let changed =
            futures::future::select_all(inputs.iter_mut().map(|r| Box::pin(r.changed()))).await;
        if changed.0.is_err() {
            return;
        }
    }
}
