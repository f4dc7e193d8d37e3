//! A reflector store kept current by a kube-rs watcher: the way every loop
//! here sees the cluster. Changes are signalled on a `Notify`, and nothing
//! is signalled before the first complete list (kube-rs' `InitDone`), so a
//! loop woken by it never acts on half the cluster. Never acts itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use tokio::sync::Notify;

/// Starts watching `api` (with `cfg`: a field or label selector) into a
/// store; `notify` is poked on every change once the first list is complete.
/// Watch errors are logged once per outage and retried with backoff.
pub fn spawn_reflector<K>(api: Api<K>, cfg: watcher::Config, notify: Arc<Notify>) -> Store<K>
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
    let stream = reflector::reflector(writer, watcher::watcher(api, cfg)).default_backoff();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        let mut listed = false;
        let mut failing = false;
        while let Some(item) = stream.next().await {
            match item {
                Ok(ev) => {
                    failing = false;
                    if matches!(ev, Event::InitDone) {
                        listed = true;
                    }
                    // Init/InitApply of a re-list are not changes yet: the
                    // store swaps to the new list at InitDone.
                    if listed && !matches!(ev, Event::Init | Event::InitApply(_)) {
                        notify.notify_one();
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, kind = %K::kind(&()), "watch failed; retrying");
                        failing = true;
                    }
                }
            }
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
