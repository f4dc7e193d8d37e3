//! A reflector store kept current by a kube-rs watcher that wakes a
//! `Notify` on every change: how the scheduler and the controllers see the
//! cluster. Nothing here acts on what it sees.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use tokio::sync::Notify;

/// Starts watching `api` into a store; `notify` is poked on every change.
/// Watch errors are logged and retried with backoff, never fatal.
pub fn spawn_reflector<K>(api: Api<K>, notify: Arc<Notify>) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store::<K>();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            if let Err(e) = item {
                tracing::warn!(error = %e, kind = %K::kind(&()), "watch error; retrying");
            }
            notify.notify_one();
        }
    });
    reader
}

/// Waits after a full pass over the stores, so that passes take at most
/// half of a core (the pass's own duration again) and start at most every
/// `min_gap`. A pass is O(objects in the stores); one per event, at
/// thousands of events a second, starved the API server these loops are
/// clients of. Events that arrive meanwhile coalesce in the `Notify` into
/// the next pass.
pub async fn pace(pass_started: Instant, min_gap: Duration) {
    let took = pass_started.elapsed();
    tokio::time::sleep(took.max(min_gap.saturating_sub(took))).await;
}
