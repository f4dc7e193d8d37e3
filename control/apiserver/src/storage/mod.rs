//! etcd access for the API server: objects as JSON under
//! `<prefix>/<resource>/<namespace>/<name>`, `resourceVersion` = the key's
//! mod revision. Writes are single transactions (create-if-absent, compare
//! mod revision) that may also claim or release allocation keys atomically.
//! It knows nothing of kinds, validation or HTTP.

pub mod recent;
pub mod watch;

use std::sync::Arc;

use bytes::Bytes;

use etcd_client::{
    Client, Compare, CompareOp, GetOptions, SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse,
};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("etcd {op} {key}: {source}")]
    Etcd {
        op: &'static str,
        key: String,
        source: etcd_client::Error,
    },
    #[error("revision {0} has been compacted")]
    Compacted(i64),
    #[error("stored object at {key} is not JSON: {source}")]
    Decode {
        key: String,
        source: serde_json::Error,
    },
}

impl StorageError {
    fn etcd(op: &'static str, key: &str, source: etcd_client::Error) -> Self {
        StorageError::Etcd {
            op,
            key: key.to_string(),
            source,
        }
    }
}

fn is_compacted(e: &etcd_client::Error) -> bool {
    e.to_string().contains("compacted")
}

/// One stored object with its revision.
#[derive(Clone, Debug)]
pub struct Stored {
    pub key: String,
    pub value: Value,
    pub mod_revision: i64,
}

/// What a write expects to find at the object's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    Absent,
    ModRevision(i64),
}

/// One atomic write: the object itself, plus allocation keys to claim
/// (must be absent, or already owned by the same owner value) and release.
#[derive(Clone, Debug, Default)]
pub struct Write {
    /// `None` deletes the key.
    pub value: Option<Vec<u8>>,
    pub claims: Vec<String>,
    pub releases: Vec<String>,
    /// The value written into claimed keys (the owner's key).
    pub owner: String,
    /// Other keys that must still be at these mod revisions (what an
    /// admission check read, e.g. the namespace a create goes into).
    pub guards: Vec<(String, i64)>,
    /// Other objects written with this one if their keys are absent (and
    /// left as they are if not): what a create brings along, such as a new
    /// namespace's `default` ServiceAccount.
    pub companions: Vec<(String, Vec<u8>)>,
}

/// Why a write did not happen.
#[derive(Debug)]
pub enum WriteOutcome {
    Done {
        revision: i64,
    },
    /// The object was not in the expected state; holds what is there now.
    ObjectChanged(Option<Stored>),
    /// An allocation key is held by someone else.
    ClaimTaken(String),
    /// A guard key is no longer at the expected revision.
    GuardChanged(String),
}

pub struct ListPage {
    pub items: Vec<Stored>,
    /// The revision the page was read at.
    pub revision: i64,
    /// Keys left after this page (0 when done).
    pub remaining: i64,
}

/// The largest etcd range answer a list may read in one call.
const MAX_LIST_BYTES: usize = 1 << 30;

#[derive(Clone)]
pub struct Storage {
    client: Client,
    prefix: String,
    recent: Arc<recent::Recent>,
}

impl Storage {
    pub fn new(client: Client, prefix: &str) -> Self {
        Storage {
            client,
            prefix: prefix.trim_end_matches('/').to_string(),
            recent: Arc::new(recent::Recent::new(recent::DEFAULT_MAX_BYTES)),
        }
    }

    /// The object at `key` as this server last wrote or read it: a guess
    /// for a compare-and-swap, never an answer to a read.
    pub fn guess(&self, key: &str) -> Option<Stored> {
        let (bytes, mod_revision) = self.recent.get(key)?;
        let value = Self::decode(key, &bytes).ok()?;
        Some(Stored {
            key: key.to_string(),
            value,
            mod_revision,
        })
    }

    /// `guess`, else a read.
    pub async fn guess_or_get(&self, key: &str) -> Result<Option<Stored>, StorageError> {
        match self.guess(key) {
            Some(s) => Ok(Some(s)),
            None => self.get(key).await,
        }
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// `<prefix>/<rest>`.
    pub fn key(&self, rest: &str) -> String {
        format!("{}/{}", self.prefix, rest)
    }

    fn decode(key: &str, bytes: &[u8]) -> Result<Value, StorageError> {
        serde_json::from_slice(bytes).map_err(|source| StorageError::Decode {
            key: key.to_string(),
            source,
        })
    }

    pub async fn get(&self, key: &str) -> Result<Option<Stored>, StorageError> {
        let mut kv = self.client.kv_client();
        let resp = kv
            .get(key, None)
            .await
            .map_err(|e| StorageError::etcd("get", key, e))?;
        match resp.kvs().first() {
            None => Ok(None),
            Some(item) => {
                let value = Self::decode(key, item.value())?;
                self.recent.put(
                    key,
                    Bytes::copy_from_slice(item.value()),
                    item.mod_revision(),
                );
                Ok(Some(Stored {
                    key: key.to_string(),
                    value,
                    mod_revision: item.mod_revision(),
                }))
            }
        }
    }

    /// The store's current revision.
    pub async fn revision(&self) -> Result<i64, StorageError> {
        let mut kv = self.client.kv_client();
        let resp = kv
            .get(
                self.prefix.as_str(),
                Some(GetOptions::new().with_count_only()),
            )
            .await
            .map_err(|e| StorageError::etcd("get", &self.prefix, e))?;
        Ok(resp.header().map(|h| h.revision()).unwrap_or(0))
    }

    /// Keys under `dir` (which ends with '/') from `start` (inclusive;
    /// `None` = the beginning), at `revision` (0 = now), at most `limit`
    /// (0 = all), in key order.
    pub async fn list(
        &self,
        dir: &str,
        start: Option<&str>,
        revision: i64,
        limit: i64,
    ) -> Result<ListPage, StorageError> {
        let end = prefix_end(dir);
        let from = start.unwrap_or(dir).to_string();
        let mut opts = GetOptions::new()
            .with_range(end)
            .with_sort(SortTarget::Key, SortOrder::Ascend);
        if revision > 0 {
            opts = opts.with_revision(revision);
        }
        if limit > 0 {
            opts = opts.with_limit(limit);
        }
        // A full list can be far over gRPC's 4 MiB default (10,000 pods are
        // ~7 MiB); kube-apiserver lifts the limit for its etcd client too.
        let mut kv = self
            .client
            .kv_client()
            .max_decoding_message_size(MAX_LIST_BYTES);
        let resp = kv.get(from.as_str(), Some(opts)).await.map_err(|e| {
            if is_compacted(&e) {
                StorageError::Compacted(revision)
            } else {
                StorageError::etcd("list", dir, e)
            }
        })?;
        let revision = if revision > 0 {
            revision
        } else {
            resp.header().map(|h| h.revision()).unwrap_or(0)
        };
        let mut items = Vec::with_capacity(resp.kvs().len());
        for item in resp.kvs() {
            let key = String::from_utf8_lossy(item.key()).into_owned();
            items.push(Stored {
                value: Self::decode(&key, item.value())?,
                key,
                mod_revision: item.mod_revision(),
            });
        }
        let remaining = if resp.more() {
            resp.count() - items.len() as i64
        } else {
            0
        };
        Ok(ListPage {
            items,
            revision,
            remaining,
        })
    }

    /// Keys under `dir` only (no values): allocation tables.
    pub async fn keys(&self, dir: &str) -> Result<Vec<String>, StorageError> {
        let mut kv = self.client.kv_client();
        let resp = kv
            .get(dir, Some(GetOptions::new().with_prefix().with_keys_only()))
            .await
            .map_err(|e| StorageError::etcd("list keys", dir, e))?;
        Ok(resp
            .kvs()
            .iter()
            .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
            .collect())
    }

    /// Applies `write` to `key` if the key is as `expect` says and every
    /// claim is free (or already ours), all in one etcd transaction.
    pub async fn write(
        &self,
        key: &str,
        expect: Expect,
        write: Write,
    ) -> Result<WriteOutcome, StorageError> {
        let mut compares = vec![match expect {
            Expect::Absent => Compare::create_revision(key, CompareOp::Equal, 0),
            Expect::ModRevision(r) => Compare::mod_revision(key, CompareOp::Equal, r),
        }];
        // A claim is free when absent; one we already own is not claimed
        // again (the caller leaves it out), so "absent" is the whole test.
        for c in &write.claims {
            compares.push(Compare::create_revision(c.as_str(), CompareOp::Equal, 0));
        }
        for (g, rev) in &write.guards {
            compares.push(Compare::mod_revision(g.as_str(), CompareOp::Equal, *rev));
        }
        let value = write.value.map(Bytes::from);
        let mut ops = Vec::new();
        match &value {
            Some(v) => ops.push(TxnOp::put(key, v.to_vec(), None)),
            None => ops.push(TxnOp::delete(key, None)),
        }
        for c in &write.claims {
            ops.push(TxnOp::put(c.as_str(), write.owner.clone(), None));
        }
        for r in &write.releases {
            ops.push(TxnOp::delete(r.as_str(), None));
        }
        // Each companion is its own nested put-if-absent: one already there
        // neither fails the write nor is overwritten.
        for (k, v) in &write.companions {
            ops.push(TxnOp::txn(
                Txn::new()
                    .when(vec![Compare::create_revision(
                        k.as_str(),
                        CompareOp::Equal,
                        0,
                    )])
                    .and_then(vec![TxnOp::put(k.as_str(), v.clone(), None)]),
            ));
        }
        let mut otherwise = vec![TxnOp::get(key, None)];
        for c in &write.claims {
            otherwise.push(TxnOp::get(c.as_str(), None));
        }
        for (g, _) in &write.guards {
            otherwise.push(TxnOp::get(g.as_str(), None));
        }
        let txn = Txn::new().when(compares).and_then(ops).or_else(otherwise);
        let mut kv = self.client.kv_client();
        let resp = kv
            .txn(txn)
            .await
            .map_err(|e| StorageError::etcd("txn", key, e))?;
        let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
        if resp.succeeded() {
            match value {
                Some(v) => self.recent.put(key, v, revision),
                None => self.recent.forget(key, revision),
            }
            return Ok(WriteOutcome::Done { revision });
        }
        let answers = resp.op_responses();
        let mut gets = answers.iter().filter_map(|r| match r {
            TxnOpResponse::Get(g) => Some(g),
            _ => None,
        });
        let current = match gets.next().and_then(|g| g.kvs().first()) {
            Some(item) => {
                self.recent.put(
                    key,
                    Bytes::copy_from_slice(item.value()),
                    item.mod_revision(),
                );
                Some(Stored {
                    key: key.to_string(),
                    value: Self::decode(key, item.value())?,
                    mod_revision: item.mod_revision(),
                })
            }
            None => None,
        };
        let object_ok = match expect {
            Expect::Absent => current.is_none(),
            Expect::ModRevision(r) => current.as_ref().is_some_and(|c| c.mod_revision == r),
        };
        if object_ok {
            for claim in &write.claims {
                if gets.next().is_some_and(|g| !g.kvs().is_empty()) {
                    return Ok(WriteOutcome::ClaimTaken(claim.clone()));
                }
            }
            for (guard, rev) in &write.guards {
                let now = gets
                    .next()
                    .and_then(|g| g.kvs().first())
                    .map(|kv| kv.mod_revision())
                    .unwrap_or(0);
                if now != *rev {
                    return Ok(WriteOutcome::GuardChanged(guard.clone()));
                }
            }
        }
        if current.is_none() {
            self.recent.forget(key, revision);
        }
        Ok(WriteOutcome::ObjectChanged(current))
    }

    /// Compacts etcd's history up to `revision` (tests and maintenance).
    pub async fn compact(&self, revision: i64) -> Result<(), StorageError> {
        let mut kv = self.client.kv_client();
        kv.compact(revision, None)
            .await
            .map_err(|e| StorageError::etcd("compact", &self.prefix, e))?;
        Ok(())
    }
}

/// The first key after every key that starts with `prefix`.
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end("/registry/pods/"), b"/registry/pods0".to_vec());
    }
}
