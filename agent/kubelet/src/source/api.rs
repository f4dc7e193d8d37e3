//! The API source: a reflector store of the pods with
//! `spec.nodeName=<node>` (capstan-k8s' spawner: nothing before the initial
//! list is complete); every change after it publishes a full snapshot
//! (pods being deleted included: their workers see `deletionTimestamp` and
//! terminate them). Never writes.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::sync::{watch, Notify};

use super::snapshot::Snapshot;

pub async fn run(client: Client, node: String, tx: watch::Sender<Option<Arc<Snapshot>>>) {
    let api: Api<Pod> = Api::all(client);
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let changed = Arc::new(Notify::new());
    let reader = capstan_k8s::spawn_reflector(api, cfg, changed.clone());
    loop {
        changed.notified().await;
        let pods = reader
            .state()
            .into_iter()
            .filter_map(|p| Some((p.metadata.uid.clone()?, Arc::new((*p).clone()))))
            .collect();
        if tx.send(Some(Arc::new(Snapshot { pods }))).is_err() {
            return;
        }
    }
}
