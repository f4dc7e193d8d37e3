//! Keeps the `Policy` current from etcd: per RBAC kind, a list (which
//! replaces that kind in the index and counts as synced), then a watch from
//! the list's revision applying puts and deletes; a watch that ends or
//! falls below compaction lists again. The API server is etcd's only
//! writer, so this sees every change it made, and only those.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::policy::{Kind, Policy};
use crate::storage::watch::{EtcdWatch, RawEvent, WatchMessage};
use crate::storage::{Storage, StorageError};

const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// One task per kind, for the life of the process.
pub fn spawn(storage: Storage, policy: Arc<Policy>) {
    for kind in Kind::ALL {
        tokio::spawn(run(storage.clone(), policy.clone(), kind));
    }
}

async fn run(storage: Storage, policy: Arc<Policy>, kind: Kind) {
    let dir = storage.key(&format!("{}/", kind.plural()));
    let mut backoff = Duration::from_millis(200);
    let mut failing = false;
    loop {
        match follow(&storage, &policy, kind, &dir).await {
            Ok(()) => {
                backoff = Duration::from_millis(200);
                if failing {
                    tracing::info!(kind = kind.plural(), "RBAC watch recovered");
                    failing = false;
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(kind = kind.plural(), error = %e, "RBAC watch failed; retrying");
                    failing = true;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// List, then watch until the watch ends (Ok: list again) or fails.
async fn follow(
    storage: &Storage,
    policy: &Policy,
    kind: Kind,
    dir: &str,
) -> Result<(), StorageError> {
    let page = storage.list(dir, None, 0, 0).await?;
    let items: Vec<Value> = page.items.into_iter().map(|s| s.value).collect();
    policy.replace(kind, &items);
    tracing::debug!(
        kind = kind.plural(),
        count = items.len(),
        revision = page.revision,
        "RBAC objects listed"
    );
    let mut watch = EtcdWatch::start(storage, dir, page.revision + 1).await?;
    loop {
        match watch.next().await {
            Ok(Some(WatchMessage::Events(events))) => policy.update(|ix| {
                for ev in events {
                    match ev {
                        RawEvent::Put { value, .. } => ix.put(kind, &value),
                        RawEvent::Delete { key, .. } => {
                            let rest = key.strip_prefix(dir).unwrap_or(&key);
                            let (ns, name) = if kind.namespaced() {
                                rest.split_once('/').unwrap_or(("", rest))
                            } else {
                                ("", rest)
                            };
                            ix.delete(kind, ns, name);
                        }
                    }
                }
            }),
            Ok(Some(WatchMessage::Progress(_))) => {}
            Ok(None) | Err(StorageError::Compacted(_)) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}
