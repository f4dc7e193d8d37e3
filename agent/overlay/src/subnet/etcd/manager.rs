//! Subnet acquisition and renewal on top of a `LeaseStore`: reuse this
//! node's lease if it still exists, else try the previous subnet, else pick a
//! free one and create it with put-if-absent, retrying when another node wins
//! the race. The kube subnet manager (`subnet/kube`) is the other
//! `SubnetManager`; the reconcile loop never knows which one it runs with.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use ipnetwork::Ipv4Network;
use tokio::sync::mpsc;

use crate::subnet::arith;
use crate::subnet::config::NetworkConfig;
use crate::subnet::etcd::lease_store::LeaseStore;
use crate::subnet::lease::{Lease, LeaseAttrs, LeaseId, LeaseList, StoreError, WatchItem};
use crate::subnet::manager::{AcquireError, SubnetManager};

/// The etcd-style subnet manager: any `LeaseStore` with TTL leases.
pub struct StoreSubnetManager<S> {
    pub store: S,
    pub ttl: Duration,
}

const MAX_RACES: usize = 32;

impl<S: LeaseStore> SubnetManager for StoreSubnetManager<S> {
    fn network_config(&self) -> impl Future<Output = Result<NetworkConfig, StoreError>> + Send {
        self.store.network_config()
    }

    async fn acquire(
        &self,
        cfg: &NetworkConfig,
        attrs: &LeaseAttrs,
        previous: Option<Ipv4Network>,
    ) -> Result<Lease, AcquireError> {
        let fits = |s: &Ipv4Network| {
            s.prefix() == cfg.subnet_len && cfg.network.contains(s.network()) && *s != first(cfg)
        };
        // The value written for subnet `s`: dual-stack adds its IPv6 subnet.
        let attrs_for = |s: Ipv4Network| {
            let mut a = attrs.clone();
            a.ipv6_subnet = cfg.ipv6_of(s);
            if a.ipv6_subnet.is_none() {
                a.backend_v6_data = None;
            }
            a
        };
        let mut list = self.store.list().await?;
        // 1. This node's own lease, still alive: keep it (same etcd lease).
        if let Some(mine) = list
            .leases
            .iter()
            .find(|l| l.attrs.public_ip == attrs.public_ip && fits(&l.subnet))
            .cloned()
        {
            if self.store.keep_alive(mine.id).await?.is_some() {
                let want = attrs_for(mine.subnet);
                if mine.attrs == want {
                    return Ok(mine);
                }
                if let Some(updated) = self.store.update(&mine, &want).await? {
                    return Ok(updated);
                }
            }
            list = self.store.list().await?;
        }
        let id = self.store.grant(self.ttl).await?;
        let r = self.create_new(cfg, &attrs_for, previous, list, id).await;
        if r.is_err() {
            // The etcd lease holds no key now (or only a key whose create
            // answer was lost): revoke it rather than leave it to its TTL.
            if let Err(e) = self.store.revoke(id).await {
                tracing::warn!(lease_id = id.0, error = %e, "could not revoke the lease of a failed acquire; it expires with its TTL");
            }
        }
        r
    }

    async fn renew(&self, lease: &Lease) -> Result<bool, StoreError> {
        Ok(self.store.keep_alive(lease.id).await?.is_some())
    }

    fn list(&self) -> impl Future<Output = Result<LeaseList, StoreError>> + Send {
        self.store.list()
    }

    fn watch(
        &self,
        revision: i64,
    ) -> impl Future<Output = Result<mpsc::Receiver<Result<WatchItem, StoreError>>, StoreError>> + Send
    {
        self.store.watch(revision)
    }
}

impl<S: LeaseStore> StoreSubnetManager<S> {
    /// Steps 2 and 3 of `acquire`: a new key bound to the granted lease `id`.
    async fn create_new(
        &self,
        cfg: &NetworkConfig,
        attrs_for: &impl Fn(Ipv4Network) -> LeaseAttrs,
        previous: Option<Ipv4Network>,
        mut list: LeaseList,
        id: LeaseId,
    ) -> Result<Lease, AcquireError> {
        let fits = |s: &Ipv4Network| {
            s.prefix() == cfg.subnet_len && cfg.network.contains(s.network()) && *s != first(cfg)
        };
        // 2. The subnet this node had before (from its subnet file), if free.
        if let Some(prev) = previous.filter(fits) {
            if !list.leases.iter().any(|l| l.subnet == prev) {
                if let Some(l) = self.store.create(prev, &attrs_for(prev), id).await? {
                    return Ok(l);
                }
            }
        }
        // 3. A free one; losing the put-if-absent race means re-list and retry.
        for _ in 0..MAX_RACES {
            let taken: BTreeSet<Ipv4Network> = list.leases.iter().map(|l| l.subnet).collect();
            let pick: usize = rand::random::<u32>() as usize;
            let Some(s) = arith::choose_free(cfg.network, cfg.subnet_len, &taken, pick) else {
                return Err(AcquireError::Exhausted {
                    network: cfg.network,
                    subnet_len: cfg.subnet_len,
                    taken: taken.len(),
                });
            };
            if let Some(l) = self.store.create(s, &attrs_for(s), id).await? {
                return Ok(l);
            }
            tracing::debug!(subnet = %s, "subnet taken concurrently; retrying");
            list = self.store.list().await?;
        }
        Err(AcquireError::TooManyRaces {
            attempts: MAX_RACES,
        })
    }
}

/// The first subnet of the network, never handed out.
fn first(cfg: &NetworkConfig) -> Ipv4Network {
    Ipv4Network::new(cfg.network.network(), cfg.subnet_len).unwrap_or(cfg.network)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subnet::config::Backend;
    use crate::subnet::etcd::fake::MemStore;
    use crate::subnet::lease::BackendData;
    use crate::types::{NodeIp, Vni};

    fn cfg(net: &str) -> NetworkConfig {
        NetworkConfig {
            network: net.parse().unwrap(),
            subnet_len: 24,
            ipv6_network: None,
            ipv6_subnet_len: 64,
            backend: Backend::Vxlan {
                vni: Vni(1),
                port: 8472,
                direct_routing: false,
            },
        }
    }

    fn attrs(ip: &str) -> LeaseAttrs {
        LeaseAttrs {
            public_ip: NodeIp(ip.parse().unwrap()),
            backend_type: "vxlan".into(),
            backend_data: BackendData {
                vtep_mac: Some("02:00:00:00:00:01".parse().unwrap()),
            },
            node_name: String::new(),
            ipv6_subnet: None,
            backend_v6_data: None,
        }
    }

    fn mgr() -> StoreSubnetManager<MemStore> {
        StoreSubnetManager {
            store: MemStore::default(),
            ttl: Duration::from_secs(60),
        }
    }

    #[tokio::test]
    async fn nodes_get_distinct_subnets_until_exhausted() {
        let m = mgr();
        let c = cfg("10.244.0.0/22");
        let mut got = BTreeSet::new();
        for i in 0..3 {
            let l = m
                .acquire(&c, &attrs(&format!("192.168.1.{i}")), None)
                .await
                .unwrap();
            assert!(got.insert(l.subnet), "duplicate {}", l.subnet);
        }
        let e = m
            .acquire(&c, &attrs("192.168.1.9"), None)
            .await
            .unwrap_err();
        assert!(matches!(e, AcquireError::Exhausted { .. }), "{e}");
        // The lease granted for the failed attempt is revoked, not leaked.
        let granted = 100 + *m.store.next_id.lock().unwrap();
        assert_eq!(*m.store.revoked.lock().unwrap(), vec![granted]);
        assert!(e.to_string().contains("10.244.0.0/22"), "{e}");
    }

    #[tokio::test]
    async fn same_node_gets_its_lease_back() {
        let m = mgr();
        let c = cfg("10.244.0.0/16");
        let a = m.acquire(&c, &attrs("192.168.1.1"), None).await.unwrap();
        let b = m.acquire(&c, &attrs("192.168.1.1"), None).await.unwrap();
        assert_eq!(a, b, "same lease, same etcd lease id, no rewrite");
        // A new VTEP MAC rewrites the value but keeps the subnet.
        let mut changed = attrs("192.168.1.1");
        changed.backend_data.vtep_mac = Some("02:00:00:00:00:02".parse().unwrap());
        let c2 = m.acquire(&c, &changed, None).await.unwrap();
        assert_eq!(c2.subnet, a.subnet);
        assert_eq!(c2.attrs, changed);
    }

    #[tokio::test]
    async fn previous_subnet_is_preferred_when_free() {
        let m = mgr();
        let c = cfg("10.244.0.0/16");
        let prev: Ipv4Network = "10.244.77.0/24".parse().unwrap();
        let l = m
            .acquire(&c, &attrs("192.168.1.1"), Some(prev))
            .await
            .unwrap();
        assert_eq!(l.subnet, prev);
        // Outside the network: ignored.
        let l2 = m
            .acquire(
                &c,
                &attrs("192.168.1.2"),
                Some("10.9.0.0/24".parse().unwrap()),
            )
            .await
            .unwrap();
        assert!(c.network.contains(l2.subnet.network()));
    }

    #[tokio::test]
    async fn lost_race_retries_with_another_subnet() {
        let m = mgr();
        let c = cfg("10.244.0.0/22");
        *m.store.steal_on_create.lock().unwrap() =
            arith::all_subnets(c.network, 24).take(2).collect();
        let l = m.acquire(&c, &attrs("192.168.1.1"), None).await.unwrap();
        assert_eq!(l.subnet, "10.244.3.0/24".parse::<Ipv4Network>().unwrap());
    }

    #[tokio::test]
    async fn expired_own_lease_is_recreated() {
        let m = mgr();
        let c = cfg("10.244.0.0/16");
        let a = m.acquire(&c, &attrs("192.168.1.1"), None).await.unwrap();
        m.store.dead_leases.lock().unwrap().push(a.id.0);
        m.store.kv.lock().unwrap().clear();
        assert!(!m.renew(&a).await.unwrap());
        let b = m
            .acquire(&c, &attrs("192.168.1.1"), Some(a.subnet))
            .await
            .unwrap();
        assert_eq!(b.subnet, a.subnet);
        assert_ne!(b.id, a.id);
    }
}
