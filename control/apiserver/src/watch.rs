//! Watch as Kubernetes streams it: newline-delimited `{"type","object"}`
//! events from a resourceVersion (or the current state as ADDED events when
//! none is given), selector transitions turned into ADDED/DELETED, BOOKMARKs
//! from etcd progress notifications, and an ERROR event with a 410 Status
//! when the revision has been compacted. It never writes to storage.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::resources::Resource;
use super::rest::{self, ListOptions};
use super::status::ApiError;
use super::storage::watch::{EtcdWatch, RawEvent, WatchMessage};
use super::storage::StorageError;
use super::table;
use super::ApiServer;

#[derive(Clone, Debug, Default)]
pub struct WatchOptions {
    pub list: ListOptions,
    /// `None` or "0": start from the current state.
    pub resource_version: Option<i64>,
    pub bookmarks: bool,
    pub timeout: Option<Duration>,
    /// Send each object as a one-row Table (kubectl get --watch asks so);
    /// the value is `includeObject`.
    pub as_table: Option<String>,
    /// `sendInitialEvents=true` (streaming lists): the current state as
    /// ADDED events, then a BOOKMARK annotated `k8s.io/initial-events-end`.
    pub send_initial_events: bool,
}

/// The annotation on the bookmark that ends a streaming list's initial
/// events.
pub const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

fn line(kind: &str, object: Value) -> Bytes {
    let mut s = json!({"type": kind, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}

fn gone(rev: i64) -> Bytes {
    let e = ApiError::Gone(format!("too old resource version: {rev}"));
    line("ERROR", e.to_status())
}

/// Starts a watch; events arrive on the returned channel until the client
/// goes away, the timeout passes, or etcd ends it.
pub async fn start(
    api: std::sync::Arc<ApiServer>,
    res: &'static Resource,
    ns: Option<String>,
    opts: WatchOptions,
) -> Result<mpsc::Receiver<Bytes>, ApiError> {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let mut initial = Vec::new();
    let from = match opts.resource_version {
        Some(rv) if rv > 0 && !opts.send_initial_events => rv + 1,
        _ => {
            let list_opts = ListOptions {
                limit: 0,
                continue_token: None,
                ..opts.list.clone()
            };
            let listed = rest::list(&api, res, ns.as_deref(), &list_opts).await?;
            let rev: i64 = listed["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            if let Some(items) = listed.get("items").and_then(Value::as_array) {
                initial.extend(items.iter().cloned());
            }
            rev + 1
        }
    };
    let dir = api.storage.key(&rest::dir_path(res, ns.as_deref()));
    let etcd = EtcdWatch::start(&api.storage, &dir, from).await?;
    tokio::spawn(run(api, res, opts, from, initial, etcd, tx));
    Ok(rx)
}

async fn run(
    api: std::sync::Arc<ApiServer>,
    res: &'static Resource,
    opts: WatchOptions,
    from: i64,
    initial: Vec<Value>,
    mut etcd: EtcdWatch,
    tx: mpsc::Sender<Bytes>,
) {
    let present = |obj: Value| match &opts.as_table {
        Some(include) => table::table(res.kind, std::slice::from_ref(&obj), None, include),
        None => obj,
    };
    for obj in initial {
        if tx.send(line("ADDED", present(obj))).await.is_err() {
            return;
        }
    }
    if opts.send_initial_events {
        let end = json!({"kind": res.kind, "apiVersion": res.api_version(), "metadata": {
            "resourceVersion": (from - 1).to_string(),
            "annotations": {INITIAL_EVENTS_END: "true"}}});
        if tx.send(line("BOOKMARK", end)).await.is_err() {
            return;
        }
    }
    let deadline = opts.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut tick = tokio::time::interval(api.config.bookmark_interval);
    tick.tick().await;
    let mut last_sent = from - 1;
    let bookmark = |rev: i64| {
        line(
            "BOOKMARK",
            json!({"kind": res.kind, "apiVersion": res.api_version(), "metadata": {"resourceVersion": rev.to_string()}}),
        )
    };
    loop {
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tx.closed() => return,
            _ = sleep => return,
            _ = tick.tick(), if opts.bookmarks => {
                if let Err(e) = etcd.request_progress().await {
                    tracing::debug!(error = %e, "watch progress request failed");
                    return;
                }
            }
            msg = etcd.next() => match msg {
                Ok(Some(WatchMessage::Events(events))) => {
                    for ev in events {
                        let (out, rev) = translate(&opts.list, ev);
                        last_sent = last_sent.max(rev);
                        if let Some((kind, obj)) = out {
                            if tx.send(line(kind, present(obj))).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                Ok(Some(WatchMessage::Progress(rev))) => {
                    if opts.bookmarks && rev > 0 {
                        last_sent = last_sent.max(rev);
                        if tx.send(bookmark(last_sent)).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(None) => return,
                Err(StorageError::Compacted(_)) => {
                    let _ = tx.send(gone(from - 1)).await;
                    return;
                }
                Err(e) => {
                    tracing::debug!(error = %e, resource = res.plural, "watch ended");
                    let _ = tx.send(line("ERROR", ApiError::from(e).to_status())).await;
                    return;
                }
            }
        }
    }
}

/// One etcd event as a Kubernetes event for a watcher with these
/// selectors: an object that leaves the selection is DELETED for it, one
/// that enters is ADDED.
fn translate(sel: &ListOptions, ev: RawEvent) -> (Option<(&'static str, Value)>, i64) {
    let m = |o: &Value| rest::matches(&sel.label, &sel.field, o);
    match ev {
        RawEvent::Put {
            value,
            prev,
            mod_revision,
            ..
        } => {
            let now = m(&value);
            let before = prev.as_ref().map(&m);
            let obj = rest::with_rv(value, mod_revision);
            let out = match (before, now) {
                (None, true) | (Some(false), true) => Some(("ADDED", obj)),
                (Some(true), true) => Some(("MODIFIED", obj)),
                (Some(true), false) => Some(("DELETED", obj)),
                _ => None,
            };
            (out, mod_revision)
        }
        RawEvent::Delete {
            prev, mod_revision, ..
        } => {
            let out = prev
                .filter(&m)
                .map(|p| ("DELETED", rest::with_rv(p, mod_revision)));
            (out, mod_revision)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selectors::LabelSelector;

    fn kind(b: &Option<(&'static str, Value)>) -> Option<String> {
        b.as_ref().map(|(k, _)| k.to_string())
    }

    #[test]
    fn selector_transitions() {
        let sel = ListOptions {
            label: LabelSelector::parse("app=a").unwrap(),
            ..Default::default()
        };
        let a = json!({"metadata": {"name": "x", "labels": {"app": "a"}}});
        let b = json!({"metadata": {"name": "x", "labels": {"app": "b"}}});
        let put = |v: &Value, p: Option<&Value>| RawEvent::Put {
            key: "k".into(),
            value: v.clone(),
            prev: p.cloned(),
            mod_revision: 5,
        };
        assert_eq!(
            kind(&translate(&sel, put(&a, None)).0).as_deref(),
            Some("ADDED")
        );
        assert_eq!(
            kind(&translate(&sel, put(&a, Some(&a))).0).as_deref(),
            Some("MODIFIED")
        );
        assert_eq!(
            kind(&translate(&sel, put(&b, Some(&a))).0).as_deref(),
            Some("DELETED")
        );
        assert_eq!(
            kind(&translate(&sel, put(&a, Some(&b))).0).as_deref(),
            Some("ADDED")
        );
        assert_eq!(kind(&translate(&sel, put(&b, Some(&b))).0), None);
        let del = RawEvent::Delete {
            key: "k".into(),
            prev: Some(a.clone()),
            mod_revision: 6,
        };
        let (out, rev) = translate(&sel, del);
        assert_eq!(kind(&out).as_deref(), Some("DELETED"));
        assert_eq!(rev, 6);
    }
}
