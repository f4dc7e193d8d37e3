//! A raw etcd watch over one key prefix from a revision: puts and deletes
//! with previous values, progress notifications (for bookmarks), and
//! compaction reported as its own error so callers can answer 410.

use etcd_client::{EventType, WatchOptions, WatchRequestSender, WatchResponseStream};
use serde_json::Value;

use super::{Storage, StorageError};

#[derive(Debug)]
pub enum RawEvent {
    Put {
        key: String,
        value: Value,
        prev: Option<Value>,
        mod_revision: i64,
    },
    Delete {
        key: String,
        prev: Option<Value>,
        mod_revision: i64,
    },
}

#[derive(Debug)]
pub enum WatchMessage {
    Events(Vec<RawEvent>),
    /// Everything up to `revision` has been delivered.
    Progress(i64),
}

pub struct EtcdWatch {
    sender: WatchRequestSender,
    stream: WatchResponseStream,
    dir: String,
}

impl EtcdWatch {
    /// Watches keys under `dir` from `from_revision` (inclusive).
    pub async fn start(
        storage: &Storage,
        dir: &str,
        from_revision: i64,
    ) -> Result<Self, StorageError> {
        let mut client = storage.client();
        let opts = WatchOptions::new()
            .with_prefix()
            .with_prev_key()
            .with_start_revision(from_revision);
        let stream = client
            .watch(dir, Some(opts))
            .await
            .map_err(|e| StorageError::etcd("watch", dir, e))?;
        let (sender, stream) = stream.split();
        Ok(EtcdWatch {
            sender,
            stream,
            dir: dir.to_string(),
        })
    }

    /// Asks etcd to report how far the watch has got.
    pub async fn request_progress(&mut self) -> Result<(), StorageError> {
        self.sender
            .request_progress()
            .await
            .map_err(|e| StorageError::etcd("watch progress", &self.dir, e))
    }

    /// The next batch of events or progress; `None` when etcd closed it.
    pub async fn next(&mut self) -> Result<Option<WatchMessage>, StorageError> {
        loop {
            let resp = match self.stream.message().await {
                Ok(Some(r)) => r,
                Ok(None) => return Ok(None),
                Err(e) => return Err(StorageError::etcd("watch", &self.dir, e)),
            };
            if resp.compact_revision() > 0 {
                return Err(StorageError::Compacted(resp.compact_revision()));
            }
            if resp.canceled() {
                return Ok(None);
            }
            if resp.created() && resp.events().is_empty() {
                continue;
            }
            if resp.events().is_empty() {
                let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
                return Ok(Some(WatchMessage::Progress(rev)));
            }
            let mut out = Vec::with_capacity(resp.events().len());
            for ev in resp.events() {
                let Some(kv) = ev.kv() else { continue };
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                let prev = match ev.prev_kv() {
                    Some(p) if !p.value().is_empty() => Some(decode(&key, p.value())?),
                    _ => None,
                };
                match ev.event_type() {
                    EventType::Put => out.push(RawEvent::Put {
                        value: decode(&key, kv.value())?,
                        key,
                        prev,
                        mod_revision: kv.mod_revision(),
                    }),
                    EventType::Delete => out.push(RawEvent::Delete {
                        key,
                        prev,
                        mod_revision: kv.mod_revision(),
                    }),
                }
            }
            return Ok(Some(WatchMessage::Events(out)));
        }
    }
}

fn decode(key: &str, bytes: &[u8]) -> Result<Value, StorageError> {
    serde_json::from_slice(bytes).map_err(|source| StorageError::Decode {
        key: key.to_string(),
        source,
    })
}
