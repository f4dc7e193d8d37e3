//! One reconciliation pass: desired state from the current leases, actual
//! state from the kernel, `plan` between them, apply only the difference.
//! Level-triggered: the same pass runs at start, on every lease event and
//! periodically, and a failed change is simply retried by the next pass.

use std::collections::{BTreeMap, BTreeSet};

use ipnetwork::Ipv4Network;

use crate::backend::dataplane::{Change, Dataplane, DataplaneError};
use crate::backend::plan::plan;
use crate::backend::vxlan::{self, Local};
use crate::metrics::Metrics;
use crate::subnet::config::NetworkConfig;
use crate::subnet::lease::{Lease, LeaseEvent, WatchItem};

/// The overlay's view of the world between passes.
pub struct Reconciler<D> {
    pub dp: D,
    pub cfg: NetworkConfig,
    pub local: Local,
    /// Every lease the store has, by subnet (including this node's).
    pub leases: BTreeMap<Ipv4Network, Lease>,
    /// Peers already reported as unreachable (logged once, not per pass).
    reported_skips: BTreeSet<Ipv4Network>,
    /// Peers the last plan covered (all leases but this node's and skipped ones).
    planned_peers: usize,
    pub metrics: Metrics,
}

/// Outcome of one pass.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PassReport {
    pub applied: usize,
    pub failed: usize,
}

impl<D: Dataplane> Reconciler<D> {
    pub fn new(dp: D, cfg: NetworkConfig, local: Local) -> Self {
        Reconciler {
            dp,
            cfg,
            local,
            leases: BTreeMap::new(),
            reported_skips: BTreeSet::new(),
            planned_peers: 0,
            metrics: Metrics::default(),
        }
    }

    /// Folds a watch item into the lease view. Returns true when this node's
    /// own lease was deleted (it must be re-acquired).
    pub fn absorb(&mut self, item: WatchItem) -> bool {
        let mut own_lost = false;
        match item {
            WatchItem::Resync(list) => {
                self.leases = list.leases.into_iter().map(|l| (l.subnet, l)).collect();
                own_lost = !self.leases.contains_key(&self.local.subnet);
            }
            WatchItem::Events { events, .. } => {
                for ev in events {
                    match ev {
                        LeaseEvent::Put(l) => {
                            tracing::info!(subnet = %l.subnet, public_ip = %l.attrs.public_ip, "lease added or changed");
                            self.leases.insert(l.subnet, l);
                        }
                        LeaseEvent::Delete(s) => {
                            tracing::info!(subnet = %s, "lease removed");
                            self.leases.remove(&s);
                            own_lost |= s == self.local.subnet;
                        }
                    }
                }
            }
        }
        own_lost
    }

    pub fn replace_leases(&mut self, leases: Vec<Lease>) {
        self.leases = leases.into_iter().map(|l| (l.subnet, l)).collect();
    }

    /// The changes a pass would make now, without making them.
    pub async fn pending(&mut self) -> Result<Vec<Change>, DataplaneError> {
        let leases: Vec<Lease> = self.leases.values().cloned().collect();
        let (desired, skipped) = vxlan::desired(&self.cfg, &self.local, &leases);
        let now: BTreeSet<Ipv4Network> = skipped.iter().map(|s| s.subnet).collect();
        for s in &skipped {
            if !self.reported_skips.contains(&s.subnet) {
                tracing::warn!(subnet = %s.subnet, reason = s.reason, "peer not reachable with this backend");
            }
        }
        self.planned_peers = self
            .leases
            .keys()
            .filter(|s| **s != self.local.subnet && !now.contains(s))
            .count();
        self.reported_skips = now;
        let name = desired
            .vxlan
            .as_ref()
            .map(|v| v.name.clone())
            .unwrap_or_default();
        let actual = self.dp.read(&name).await?;
        Ok(plan(&desired, &actual))
    }

    /// Runs one pass. A failing change is logged and counted; the rest of
    /// the plan still runs (it does not depend on it except through the
    /// device, whose failure makes the later steps fail the same way).
    pub async fn pass(&mut self) -> Result<PassReport, DataplaneError> {
        let started = std::time::Instant::now();
        self.metrics.reconcile_runs.inc();
        let r = self.apply_pending().await;
        self.metrics
            .reconcile_duration
            .observe(started.elapsed().as_secs_f64());
        match &r {
            Ok(rep) => {
                self.metrics.reconcile_errors.inc_by(rep.failed as u64);
                if rep.failed == 0 {
                    self.metrics.peers.set(self.planned_peers as i64);
                }
            }
            Err(_) => {
                self.metrics.reconcile_errors.inc();
            }
        }
        r
    }

    async fn apply_pending(&mut self) -> Result<PassReport, DataplaneError> {
        let changes = self.pending().await?;
        let mut report = PassReport::default();
        for c in &changes {
            match self.dp.apply(c).await {
                Ok(()) => {
                    report.applied += 1;
                    tracing::info!(change = ?c, "applied");
                }
                Err(e) => {
                    report.failed += 1;
                    tracing::warn!(change = ?c, error = %e, "change failed; will retry");
                }
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::dataplane::fake::FakeDataplane;
    use crate::backend::vxlan::Underlay;
    use crate::subnet::config::Backend;
    use crate::subnet::lease::{BackendData, LeaseAttrs, LeaseId, LeaseList};
    use crate::types::{NodeIp, Vni, VtepMac};
    use std::sync::Arc;

    fn lease(n: u8) -> Lease {
        Lease {
            subnet: format!("10.244.{n}.0/24").parse().unwrap(),
            attrs: LeaseAttrs {
                public_ip: NodeIp(format!("10.0.0.{n}").parse().unwrap()),
                backend_type: "vxlan".into(),
                backend_data: BackendData {
                    vtep_mac: Some(VtepMac([2, 0, 0, 0, 0, n])),
                },
                node_name: String::new(),
                ipv6_subnet: None,
                backend_v6_data: None,
            },
            id: LeaseId(1),
            mod_revision: 1,
        }
    }

    fn reconciler(dp: Arc<FakeDataplane>) -> Reconciler<Arc<FakeDataplane>> {
        Reconciler::new(
            dp,
            NetworkConfig {
                network: "10.244.0.0/16".parse().unwrap(),
                subnet_len: 24,
                ipv6_network: None,
                ipv6_subnet_len: 64,
                backend: Backend::Vxlan {
                    vni: Vni(1),
                    port: 8472,
                    direct_routing: false,
                },
            },
            Local {
                underlay: Underlay {
                    name: "eth0".into(),
                    index: 2,
                    mtu: 1500,
                    addr: "10.0.0.1/24".parse().unwrap(),
                },
                subnet: "10.244.1.0/24".parse().unwrap(),
                ipv6_subnet: None,
                mac: Some(VtepMac([2, 0, 0, 0, 0, 1])),
            },
        )
    }

    #[tokio::test]
    async fn second_pass_changes_nothing_and_restart_changes_nothing() {
        let dp = Arc::new(FakeDataplane::default());
        let mut r = reconciler(dp.clone());
        r.replace_leases(vec![lease(1), lease(2), lease(3)]);
        let rep = r.pass().await.unwrap();
        assert_eq!(
            rep,
            PassReport {
                applied: 3 + 2 * 3,
                failed: 0
            }
        );
        dp.take_calls();
        assert_eq!(r.pass().await.unwrap(), PassReport::default());
        assert_eq!(r.metrics.peers.get(), 2);
        assert_eq!(r.metrics.reconcile_runs.get(), 2);
        // A "restarted agent" over the same kernel: nothing to do.
        let mut again = reconciler(dp.clone());
        again.replace_leases(vec![lease(1), lease(2), lease(3)]);
        assert_eq!(again.pass().await.unwrap(), PassReport::default());
        assert!(dp.take_calls().is_empty());
    }

    #[tokio::test]
    async fn deleted_lease_removes_only_that_peer() {
        let dp = Arc::new(FakeDataplane::default());
        let mut r = reconciler(dp.clone());
        r.replace_leases(vec![lease(1), lease(2), lease(3)]);
        r.pass().await.unwrap();
        dp.take_calls();
        let own_lost = r.absorb(WatchItem::Events {
            events: vec![LeaseEvent::Delete("10.244.3.0/24".parse().unwrap())],
            revision: 9,
        });
        assert!(!own_lost);
        r.pass().await.unwrap();
        let calls = dp.take_calls();
        assert_eq!(calls.len(), 3, "{calls:?}");
        assert!(calls.iter().all(|c| matches!(
            c,
            Change::DelRoute(_) | Change::DelNeigh(_) | Change::DelFdb(_)
        )));
        assert!(r.absorb(WatchItem::Events {
            events: vec![LeaseEvent::Delete("10.244.1.0/24".parse().unwrap())],
            revision: 10,
        }));
    }

    #[tokio::test]
    async fn failed_change_is_retried_by_the_next_pass() {
        let dp = Arc::new(FakeDataplane::default());
        let mut r = reconciler(dp.clone());
        r.replace_leases(vec![lease(1), lease(2)]);
        r.pass().await.unwrap();
        dp.take_calls();
        r.absorb(WatchItem::Resync(LeaseList {
            leases: vec![lease(1), lease(2), lease(4)],
            revision: 5,
        }));
        let route = r
            .pending()
            .await
            .unwrap()
            .into_iter()
            .find(|c| matches!(c, Change::SetRoute(_)))
            .unwrap();
        dp.fail.lock().unwrap().push(route.clone());
        let rep = r.pass().await.unwrap();
        assert_eq!(
            rep,
            PassReport {
                applied: 2,
                failed: 1
            }
        );
        assert_eq!(r.metrics.reconcile_errors.get(), 1);
        dp.fail.lock().unwrap().clear();
        dp.take_calls();
        let rep = r.pass().await.unwrap();
        assert_eq!(
            rep,
            PassReport {
                applied: 1,
                failed: 0
            }
        );
        assert_eq!(dp.take_calls(), vec![route]);
    }
}
