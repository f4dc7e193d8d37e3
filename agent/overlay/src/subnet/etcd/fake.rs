//! An in-memory `LeaseStore` with etcd's semantics where they matter
//! (put-if-absent, revisions, leases that can vanish), for the manager's
//! tests. Test-only; it never talks to etcd.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use ipnetwork::Ipv4Network;
use tokio::sync::mpsc;

use crate::subnet::config::NetworkConfig;
use crate::subnet::etcd::lease_store::LeaseStore;
use crate::subnet::lease::{Lease, LeaseAttrs, LeaseId, LeaseList, StoreError, WatchItem};

#[derive(Default)]
pub struct MemStore {
    pub cfg: Mutex<Option<NetworkConfig>>,
    pub kv: Mutex<BTreeMap<Ipv4Network, Lease>>,
    pub rev: Mutex<i64>,
    pub next_id: Mutex<i64>,
    pub dead_leases: Mutex<Vec<i64>>,
    pub revoked: Mutex<Vec<i64>>,
    /// Subnets another node grabs just before our create lands.
    pub steal_on_create: Mutex<Vec<Ipv4Network>>,
}

impl MemStore {
    fn bump(&self) -> i64 {
        let mut r = self.rev.lock().unwrap();
        *r += 1;
        *r
    }
}

impl LeaseStore for MemStore {
    async fn network_config(&self) -> Result<NetworkConfig, StoreError> {
        self.cfg.lock().unwrap().clone().ok_or_else(|| {
            crate::subnet::config::ConfigError::Missing {
                key: "/capstan/network/config".into(),
            }
            .into()
        })
    }
    async fn list(&self) -> Result<LeaseList, StoreError> {
        Ok(LeaseList {
            leases: self.kv.lock().unwrap().values().cloned().collect(),
            revision: *self.rev.lock().unwrap(),
        })
    }
    async fn grant(&self, _ttl: Duration) -> Result<LeaseId, StoreError> {
        let mut n = self.next_id.lock().unwrap();
        *n += 1;
        Ok(LeaseId(100 + *n))
    }
    async fn create(
        &self,
        subnet: Ipv4Network,
        attrs: &LeaseAttrs,
        id: LeaseId,
    ) -> Result<Option<Lease>, StoreError> {
        let stolen = {
            let mut s = self.steal_on_create.lock().unwrap();
            let hit = s.iter().position(|x| *x == subnet);
            hit.map(|i| s.remove(i))
        };
        if let Some(s) = stolen {
            let rev = self.bump();
            let mut other = attrs.clone();
            other.public_ip = crate::types::NodeIp("10.9.9.9".parse().unwrap());
            self.kv.lock().unwrap().insert(
                s,
                Lease {
                    subnet: s,
                    attrs: other,
                    id: LeaseId(1),
                    mod_revision: rev,
                },
            );
        }
        if self.kv.lock().unwrap().contains_key(&subnet) {
            return Ok(None);
        }
        let rev = self.bump();
        let l = Lease {
            subnet,
            attrs: attrs.clone(),
            id,
            mod_revision: rev,
        };
        self.kv.lock().unwrap().insert(subnet, l.clone());
        Ok(Some(l))
    }
    async fn update(&self, lease: &Lease, attrs: &LeaseAttrs) -> Result<Option<Lease>, StoreError> {
        let rev = self.bump();
        let mut kv = self.kv.lock().unwrap();
        match kv.get_mut(&lease.subnet) {
            Some(l) if l.mod_revision == lease.mod_revision => {
                l.attrs = attrs.clone();
                l.mod_revision = rev;
                Ok(Some(l.clone()))
            }
            _ => Ok(None),
        }
    }
    async fn revoke(&self, id: LeaseId) -> Result<(), StoreError> {
        self.revoked.lock().unwrap().push(id.0);
        self.kv.lock().unwrap().retain(|_, l| l.id != id);
        Ok(())
    }
    async fn keep_alive(&self, id: LeaseId) -> Result<Option<Duration>, StoreError> {
        if self.dead_leases.lock().unwrap().contains(&id.0) {
            return Ok(None);
        }
        Ok(Some(Duration::from_secs(60)))
    }
    async fn watch(
        &self,
        _revision: i64,
    ) -> Result<mpsc::Receiver<Result<WatchItem, StoreError>>, StoreError> {
        let (_tx, rx) = mpsc::channel(1);
        Ok(rx)
    }
}
