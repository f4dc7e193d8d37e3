//! The proxy's source in the agent: kube-rs watchers on Services and
//! EndpointSlices feeding proxy events. A watch restart (Init … InitDone)
//! is buffered and handed over as one re-list, so objects deleted while the
//! watch was down are removed; syncing starts only after both initial lists
//! are complete. It must never write to the API server.

use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::sync::Notify;

use crate::proxier::{Proxy, ProxyEvent};

/// Feeds `proxy` from the API server until `stop` fires; notifies
/// `trigger` after every change.
pub async fn run(
    client: Client,
    proxy: Arc<Mutex<Proxy>>,
    trigger: Arc<Notify>,
    stop: Arc<Notify>,
) {
    let services = watcher::watcher(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    );
    let slices = watcher::watcher(
        Api::<EndpointSlice>::all(client),
        watcher::Config::default(),
    );
    let init = Arc::new(Mutex::new((false, false)));
    let a = pump(
        services,
        proxy.clone(),
        trigger.clone(),
        init.clone(),
        0,
        ProxyEvent::ServiceApplied,
        ProxyEvent::ServiceDeleted,
        ProxyEvent::ServicesReplaced,
    );
    let b = pump(
        slices,
        proxy,
        trigger,
        init,
        1,
        ProxyEvent::SliceApplied,
        ProxyEvent::SliceDeleted,
        ProxyEvent::SlicesReplaced,
    );
    tokio::select! {
        _ = futures::future::join(a, b) => {}
        _ = stop.notified() => {}
    }
}

#[allow(clippy::too_many_arguments)]
async fn pump<K: Clone>(
    stream: impl Stream<Item = Result<Event<K>, watcher::Error>>,
    proxy: Arc<Mutex<Proxy>>,
    trigger: Arc<Notify>,
    init: Arc<Mutex<(bool, bool)>>,
    which: usize,
    applied: fn(K) -> ProxyEvent,
    deleted: fn(K) -> ProxyEvent,
    replaced: fn(Vec<K>) -> ProxyEvent,
) {
    let mut stream = std::pin::pin!(stream);
    let mut buffer: Vec<K> = Vec::new();
    let mut failing = false;
    while let Some(item) = stream.next().await {
        let event = match item {
            Ok(e) => {
                failing = false;
                e
            }
            Err(e) => {
                // The watcher retries by itself; say so once per outage.
                if !failing {
                    tracing::warn!(error = %e, "proxy watch failed; retrying");
                    failing = true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                continue;
            }
        };
        let ev = match event {
            Event::Init => {
                buffer.clear();
                continue;
            }
            Event::InitApply(o) => {
                buffer.push(o);
                continue;
            }
            Event::InitDone => Some(replaced(std::mem::take(&mut buffer))),
            Event::Apply(o) => Some(applied(o)),
            Event::Delete(o) => Some(deleted(o)),
        };
        let ready = {
            let Ok(mut i) = init.lock() else { return };
            if matches!(
                ev,
                Some(ProxyEvent::ServicesReplaced(_)) | Some(ProxyEvent::SlicesReplaced(_))
            ) {
                if which == 0 {
                    i.0 = true;
                } else {
                    i.1 = true;
                }
            }
            i.0 && i.1
        };
        {
            let Ok(mut p) = proxy.lock() else { return };
            if let Some(ev) = ev {
                p.handle(ev);
            }
            if ready && !p.is_ready() {
                p.handle(ProxyEvent::InitDone);
            }
        }
        trigger.notify_one();
    }
}
