//! The proxy's Prometheus metrics (`capstan_proxy_*`): sync durations by
//! kind, failed syncs, programmed services. Registered into the caller's
//! registry (the agent serves it); this module never serves anything.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SyncLabels {
    /// "full" or "partial".
    pub kind: &'static str,
}

#[derive(Clone)]
pub struct Metrics {
    pub sync_duration: Family<SyncLabels, Histogram>,
    pub sync_failures: Counter,
    pub services: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            sync_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 16))
            }),
            sync_failures: Counter::default(),
            services: Gauge::default(),
        }
    }
}

impl Metrics {
    /// Registers under `capstan_proxy_`.
    pub fn register(&self, registry: &mut Registry) {
        capstan_serve::register_metrics!(registry, "capstan_proxy", {
            "sync_duration_seconds": "Time of one sync (render, diff, nft transaction), by kind"
                => self.sync_duration,
            "sync_failures": "Syncs whose nft transaction failed (the next one is full)"
                => self.sync_failures,
            "services": "Services programmed (per address family table)" => self.services,
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
        m.sync_duration
            .get_or_create(&SyncLabels { kind: "full" })
            .observe(0.25);
        m.sync_failures.inc();
        m.services.set(3);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).unwrap();
        assert!(
            out.contains("capstan_proxy_sync_duration_seconds_count{kind=\"full\"} 1"),
            "{out}"
        );
        assert!(out.contains("capstan_proxy_sync_failures_total 1"), "{out}");
        assert!(out.contains("capstan_proxy_services 3"), "{out}");
    }
}
