//! `LeaseStore` on etcd (etcd-client): leases are keys bound to etcd leases,
//! created by "grant, then put-if-absent in a transaction"; a watch that falls
//! below etcd's compaction re-lists and resumes. Never writes the config key.

use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, KeyValue, PutOptions, Txn,
    TxnOp, WatchOptions,
};
use ipnetwork::Ipv4Network;
use tokio::sync::mpsc;

use crate::subnet::arith;
use crate::subnet::config::{ConfigError, NetworkConfig};
use crate::subnet::etcd::lease_store::LeaseStore;
use crate::subnet::lease::{
    Lease, LeaseAttrs, LeaseEvent, LeaseId, LeaseList, StoreError, WatchItem,
};

#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    prefix: String,
}

fn unavailable(op: &'static str) -> impl FnOnce(etcd_client::Error) -> StoreError {
    move |e| StoreError::Unavailable {
        op,
        source: Box::new(e),
    }
}

impl EtcdStore {
    /// Connects to `endpoints`. Fails when none answers within a few seconds.
    pub async fn connect(endpoints: &[String], prefix: &str) -> Result<Self, StoreError> {
        let opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(5))
            // etcd's server rejects pings more often than every 5 s
            // (--grpc-keepalive-min-time) with GOAWAY "too_many_pings".
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_keep_alive_while_idle(true);
        let client = Client::connect(endpoints, Some(opts))
            .await
            .map_err(unavailable("connect"))?;
        Ok(EtcdStore {
            client,
            prefix: prefix.trim_end_matches('/').to_string(),
        })
    }

    pub fn config_key(&self) -> String {
        format!("{}/config", self.prefix)
    }

    pub fn subnets_prefix(&self) -> String {
        format!("{}/subnets/", self.prefix)
    }

    pub fn subnet_key(&self, s: Ipv4Network) -> String {
        format!("{}{}", self.subnets_prefix(), arith::key_name(s))
    }

    /// The raw client, for tests and tools.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    fn parse_kv(&self, kv: &KeyValue) -> Result<Lease, StoreError> {
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        let bad = |reason: String| StoreError::BadLease {
            key: key.clone(),
            reason,
        };
        let name = key
            .strip_prefix(&self.subnets_prefix())
            .ok_or_else(|| bad("outside the subnet prefix".into()))?;
        let subnet =
            arith::parse_key_name(name).ok_or_else(|| bad("key is not <a.b.c.d>-<len>".into()))?;
        let attrs: LeaseAttrs =
            serde_json::from_slice(kv.value()).map_err(|e| bad(e.to_string()))?;
        Ok(Lease {
            subnet,
            attrs,
            id: LeaseId(kv.lease()),
            mod_revision: kv.mod_revision(),
        })
    }

    fn subnet_of_key(&self, key: &[u8]) -> Option<Ipv4Network> {
        let key = std::str::from_utf8(key).ok()?;
        arith::parse_key_name(key.strip_prefix(&self.subnets_prefix())?)
    }

    async fn list_inner(&self) -> Result<LeaseList, StoreError> {
        let mut c = self.client.clone();
        let resp = c
            .get(self.subnets_prefix(), Some(GetOptions::new().with_prefix()))
            .await
            .map_err(unavailable("list leases"))?;
        let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
        let mut leases = Vec::new();
        for kv in resp.kvs() {
            match self.parse_kv(kv) {
                Ok(l) => leases.push(l),
                Err(e) => tracing::warn!(error = %e, "skipping lease"),
            }
        }
        Ok(LeaseList { leases, revision })
    }
}

impl LeaseStore for EtcdStore {
    async fn network_config(&self) -> Result<NetworkConfig, StoreError> {
        let key = self.config_key();
        let mut c = self.client.clone();
        let resp = c
            .get(key.clone(), None)
            .await
            .map_err(unavailable("read network config"))?;
        let kv = resp
            .kvs()
            .first()
            .ok_or(ConfigError::Missing { key: key.clone() })?;
        Ok(NetworkConfig::parse(&key, kv.value())?)
    }

    async fn list(&self) -> Result<LeaseList, StoreError> {
        self.list_inner().await
    }

    async fn grant(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        let mut c = self.client.clone();
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(1);
        let resp = c
            .lease_grant(ttl, None)
            .await
            .map_err(unavailable("grant lease"))?;
        Ok(LeaseId(resp.id()))
    }

    async fn create(
        &self,
        subnet: Ipv4Network,
        attrs: &LeaseAttrs,
        id: LeaseId,
    ) -> Result<Option<Lease>, StoreError> {
        let key = self.subnet_key(subnet);
        let value = serde_json::to_vec(attrs).map_err(|e| StoreError::BadLease {
            key: key.clone(),
            reason: e.to_string(),
        })?;
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key,
                value,
                Some(PutOptions::new().with_lease(id.0)),
            )]);
        let mut c = self.client.clone();
        let resp = c.txn(txn).await.map_err(unavailable("create lease"))?;
        if !resp.succeeded() {
            return Ok(None);
        }
        Ok(Some(Lease {
            subnet,
            attrs: attrs.clone(),
            id,
            mod_revision: resp.header().map(|h| h.revision()).unwrap_or(0),
        }))
    }

    async fn update(&self, lease: &Lease, attrs: &LeaseAttrs) -> Result<Option<Lease>, StoreError> {
        let key = self.subnet_key(lease.subnet);
        let value = serde_json::to_vec(attrs).map_err(|e| StoreError::BadLease {
            key: key.clone(),
            reason: e.to_string(),
        })?;
        let txn = Txn::new()
            .when([Compare::mod_revision(
                key.clone(),
                CompareOp::Equal,
                lease.mod_revision,
            )])
            .and_then([TxnOp::put(
                key,
                value,
                Some(PutOptions::new().with_lease(lease.id.0)),
            )]);
        let mut c = self.client.clone();
        let resp = c.txn(txn).await.map_err(unavailable("update lease"))?;
        if !resp.succeeded() {
            return Ok(None);
        }
        Ok(Some(Lease {
            subnet: lease.subnet,
            attrs: attrs.clone(),
            id: lease.id,
            mod_revision: resp.header().map(|h| h.revision()).unwrap_or(0),
        }))
    }

    async fn revoke(&self, id: LeaseId) -> Result<(), StoreError> {
        let mut c = self.client.clone();
        match c.lease_revoke(id.0).await {
            Ok(_) => Ok(()),
            // Already gone (expired): nothing to revoke.
            Err(e) if e.to_string().contains("lease not found") => Ok(()),
            Err(e) => Err(unavailable("revoke lease")(e)),
        }
    }

    async fn keep_alive(&self, id: LeaseId) -> Result<Option<Duration>, StoreError> {
        let mut c = self.client.clone();
        let (mut keeper, mut stream) = c
            .lease_keep_alive(id.0)
            .await
            .map_err(unavailable("renew lease"))?;
        keeper
            .keep_alive()
            .await
            .map_err(unavailable("renew lease"))?;
        let resp = stream.message().await.map_err(unavailable("renew lease"))?;
        Ok(resp
            .filter(|r| r.ttl() > 0)
            .map(|r| Duration::from_secs(r.ttl().unsigned_abs())))
    }

    async fn watch(
        &self,
        revision: i64,
    ) -> Result<mpsc::Receiver<Result<WatchItem, StoreError>>, StoreError> {
        let (tx, rx) = mpsc::channel(64);
        let me = self.clone();
        let mut c = self.client.clone();
        let opts = |rev: i64| {
            WatchOptions::new()
                .with_prefix()
                .with_prev_key()
                .with_start_revision(rev)
        };
        let mut stream = c
            .watch(me.subnets_prefix(), Some(opts(revision)))
            .await
            .map_err(unavailable("watch leases"))?;
        tokio::spawn(async move {
            loop {
                let resp = match stream.message().await {
                    Ok(Some(r)) => r,
                    Ok(None) => {
                        let _ = tx
                            .send(Err(StoreError::Unavailable {
                                op: "watch leases",
                                source: "watch stream closed".into(),
                            }))
                            .await;
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(unavailable("watch leases")(e))).await;
                        return;
                    }
                };
                if resp.canceled() {
                    if resp.compact_revision() > 0 {
                        // Fell below compaction: re-list, hand over the full
                        // state, and resume right after the list's revision.
                        tracing::info!(
                            compact_revision = resp.compact_revision(),
                            "lease watch compacted; re-listing"
                        );
                        let list = match me.list_inner().await {
                            Ok(l) => l,
                            Err(e) => {
                                let _ = tx.send(Err(e)).await;
                                return;
                            }
                        };
                        let next = list.revision + 1;
                        if tx.send(Ok(WatchItem::Resync(list))).await.is_err() {
                            return;
                        }
                        match c.watch(me.subnets_prefix(), Some(opts(next))).await {
                            Ok(s) => stream = s,
                            Err(e) => {
                                let _ = tx.send(Err(unavailable("watch leases")(e))).await;
                                return;
                            }
                        }
                        continue;
                    }
                    let _ = tx
                        .send(Err(StoreError::Unavailable {
                            op: "watch leases",
                            source: format!("watch canceled: {}", resp.cancel_reason()).into(),
                        }))
                        .await;
                    return;
                }
                let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
                let mut events = Vec::new();
                for ev in resp.events() {
                    let Some(kv) = ev.kv() else { continue };
                    match ev.event_type() {
                        EventType::Put => match me.parse_kv(kv) {
                            Ok(l) => events.push(LeaseEvent::Put(l)),
                            Err(e) => tracing::warn!(error = %e, "ignoring lease"),
                        },
                        EventType::Delete => {
                            if let Some(s) = me.subnet_of_key(kv.key()) {
                                events.push(LeaseEvent::Delete(s));
                            }
                        }
                    }
                }
                if events.is_empty() {
                    continue;
                }
                if tx
                    .send(Ok(WatchItem::Events { events, revision }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        Ok(rx)
    }
}
