//! The overlay's Prometheus metrics (`capstan_overlay_*`): peers programmed,
//! reconcile passes (count, failed changes, duration), subnet store errors
//! and lease renewals. Registered into the agent's one registry; this module
//! never serves anything.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug)]
pub struct Metrics {
    pub peers: Gauge,
    pub reconcile_runs: Counter,
    pub reconcile_errors: Counter,
    pub reconcile_duration: Histogram,
    pub store_errors: Counter,
    pub lease_renewals: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            peers: Gauge::default(),
            reconcile_runs: Counter::default(),
            reconcile_errors: Counter::default(),
            // 100 µs .. ~3 s: a pass is a few netlink dumps plus the changes.
            reconcile_duration: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            store_errors: Counter::default(),
            lease_renewals: Counter::default(),
        }
    }
}

impl Metrics {
    /// Registers under `capstan_overlay_`.
    pub fn register(&self, registry: &mut Registry) {
        capstan_serve::register_metrics!(registry, "capstan_overlay", {
            "peers": "Peer nodes whose routes, neighbours and FDB entries are programmed"
                => self.peers,
            "reconcile_runs": "Reconcile passes (kernel read, plan, apply)" => self.reconcile_runs,
            "reconcile_errors": "Failed kernel reads and failed changes in reconcile passes (retried)"
                => self.reconcile_errors,
            "reconcile_duration_seconds": "Time of one reconcile pass" => self.reconcile_duration,
            "subnet_store_errors": "Failed calls to the subnet store (etcd or the API server), retries included"
                => self.store_errors,
            "lease_renewals": "Successful renewals of this node's subnet lease" => self.lease_renewals,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_component_prefix() {
        let m = Metrics::default();
        let mut reg = Registry::default();
        m.register(&mut reg);
        m.peers.set(2);
        m.reconcile_runs.inc();
        m.reconcile_duration.observe(0.002);
        m.lease_renewals.inc();
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).unwrap();
        for needle in [
            "capstan_overlay_peers 2",
            "capstan_overlay_reconcile_runs_total 1",
            "capstan_overlay_reconcile_errors_total 0",
            "capstan_overlay_reconcile_duration_seconds_count 1",
            "capstan_overlay_subnet_store_errors_total 0",
            "capstan_overlay_lease_renewals_total 1",
        ] {
            assert!(out.contains(needle), "{needle} in {out}");
        }
    }
}
