//! The API source: a kube-rs watcher on pods with `spec.nodeName=<node>`
//! feeding a reflector store; once the initial list is complete, every
//! change publishes a full snapshot (pods being deleted included: their
//! workers see `deletionTimestamp` and terminate them). Never writes.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::{Api, Client};
use tokio::sync::watch;

use super::snapshot::Snapshot;

pub async fn run(client: Client, node: String, tx: watch::Sender<Option<Arc<Snapshot>>>) {
    let api: Api<Pod> = Api::all(client);
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let (reader, writer) = reflector::store();
    let stream = reflector(writer, watcher(api, cfg)).default_backoff();
    futures::pin_mut!(stream);
    let mut listed = false;
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(watcher::Event::InitDone) => listed = true,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "pod watch failed; retrying");
                continue;
            }
        }
        if !listed {
            continue;
        }
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
