//! The one sync function: drains the change trackers, renders the changed
//! services (all of them on a full sync), diffs against what each has
//! programmed and applies it, both address families together, in the
//! plan's steps (plan.rs): structure as nft text, elements as one netlink
//! batch, stale structure as nft text; then clears stale UDP flows. A
//! failed sync forces the next to be full. It must never touch a table
//! other than `capstan-proxy`.

mod apply;
mod events;
mod family;
mod hairpin;
mod health;
mod memory;
mod tamper;

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::conntrack::{self, ConntrackError};
use crate::model::{IpFamily, ServiceKey};
use crate::nft::netlink::{Batch, NetlinkError, Socket};
use crate::nft::{Nft, NftError};
use crate::render::Context;
use crate::tracker::Tracker;
use capstan_nodenet::Place;

pub use events::ProxyEvent;
pub use health::HealthCheck;
pub use tamper::DEFAULT_TAMPER_CHECK_INTERVAL;

use family::Family;
use memory::release_freed_memory;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("apply the proxy's nftables transaction: {0}")]
    Apply(#[source] NftError),
    #[error("apply the proxy's nftables elements: {0}")]
    Elements(#[source] NetlinkError),
    #[error("clear stale UDP flows: {0}")]
    Conntrack(#[source] ConntrackError),
}

/// What the proxy serves: this node, which families, which namespace.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub node_name: String,
    /// Each family to program, with its pod network (for masquerading
    /// off-cluster clients of ClusterIPs), if known.
    pub families: Vec<(IpFamily, Option<(IpAddr, u8)>)>,
    pub place: Place,
    /// Full resync at least this often (kube-proxy: one hour).
    pub full_resync_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct SyncReport {
    pub full: bool,
    pub services_changed: usize,
    pub commands: usize,
    pub elapsed: Duration,
    /// Of which applying (nft runs and the netlink batch) took this long.
    pub nft_elapsed: Duration,
    /// The full sync could not restore the table in place and re-created
    /// it (new connections failed for the length of the sync).
    pub recreated: bool,
}

pub struct Proxy {
    tracker: Tracker,
    families: Vec<Family>,
    nft: Nft,
    place: Place,
    needs_full: bool,
    last_full: Option<Instant>,
    full_every: Duration,
    ready: bool,
    health: HashMap<ServiceKey, (u16, usize)>,
    tamper_every: Duration,
    last_tamper_check: Option<Instant>,
    /// The namespace's nf_tables generation id right after our last commit.
    generation: Option<u32>,
    /// The netlink socket for element batches, opened in the namespace.
    socket: Option<Socket>,
    metrics: crate::metrics::Metrics,
}

impl Proxy {
    pub fn new(cfg: ProxyConfig) -> Proxy {
        let families = cfg
            .families
            .iter()
            .map(|(family, cidr)| {
                Family::new(Context {
                    family: *family,
                    node_name: cfg.node_name.clone(),
                    cluster_cidr: *cidr,
                })
            })
            .collect();
        Proxy {
            tracker: Tracker::new(),
            families,
            nft: Nft::new(cfg.place.clone()),
            place: cfg.place,
            needs_full: true,
            last_full: None,
            full_every: cfg.full_resync_interval,
            ready: false,
            health: HashMap::new(),
            tamper_every: DEFAULT_TAMPER_CHECK_INTERVAL,
            last_tamper_check: None,
            generation: None,
            socket: None,
            metrics: crate::metrics::Metrics::default(),
        }
    }

    /// Counts into `metrics` (the handles the agent registered) instead of
    /// its own.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Proxy {
        self.metrics = metrics;
        self
    }

    /// The proxy's metrics, to register with the agent's registry.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// Asks for the next sync to be full.
    pub fn force_full(&mut self) {
        self.needs_full = true;
    }

    /// One sync. Returns None when there was nothing to do or the initial
    /// state is not known yet.
    pub fn sync(&mut self) -> Result<Option<SyncReport>, SyncError> {
        let result = self.sync_once();
        if matches!(&result, Ok(Some(r)) if r.full) {
            // After the sync's transient state is dropped.
            release_freed_memory();
        }
        result
    }

    fn sync_once(&mut self) -> Result<Option<SyncReport>, SyncError> {
        if !self.ready {
            return Ok(None);
        }
        let start = Instant::now();
        let due = self
            .last_full
            .is_none_or(|t| t.elapsed() >= self.full_every);
        let changes = self.tracker.drain();
        let full = self.needs_full
            || due
            || (!changes.is_empty() && self.tamper_check_due() && self.tampered());
        if !full && changes.is_empty() {
            return Ok(None);
        }
        let node = self
            .families
            .first()
            .map(|f| f.ctx.node_name.clone())
            .unwrap_or_default();
        let all = full.then(|| self.tracker.all());
        let mut before = Vec::new();
        let mut batch = Batch::new();
        let mut after = Vec::new();
        // Per family, on a full sync: the chains and sets that should exist.
        let mut desired = Vec::new();
        let mut planned = Vec::new();
        for fam in &self.families {
            if let Some(all) = &all {
                let (p, d) = fam.plan_full(all, &mut before, &mut batch);
                desired.push(d);
                planned.push(p);
            } else {
                planned.push(fam.plan_partial(&changes, &mut before, &mut batch, &mut after));
            }
        }
        let nft_start = Instant::now();
        let applied = self.apply(full, before, batch, after, &desired);
        let (n, recreated) = match applied {
            Ok(r) => r,
            Err(e) => {
                self.needs_full = true;
                self.metrics.sync_failures.inc();
                return Err(e);
            }
        };
        let nft_elapsed = nft_start.elapsed();
        self.generation = self.generation();
        for (fam, p) in self.families.iter_mut().zip(planned) {
            fam.applied(full, p);
        }
        if full {
            self.needs_full = false;
            self.last_full = Some(Instant::now());
            if let Some(all) = &all {
                self.health.clear();
                for (key, state) in all {
                    self.update_health(key, state, &node);
                }
            }
        }
        let mut stale = Vec::new();
        for (key, previous, current) in &changes {
            self.update_health(key, current, &node);
            stale.extend(conntrack::stale_flows(previous, current));
        }
        self.metrics
            .sync_duration
            .get_or_create(&crate::metrics::SyncLabels {
                kind: if full { "full" } else { "partial" },
            })
            .observe(start.elapsed().as_secs_f64());
        let programmed = self.families.first().map_or(0, |f| f.programmed.len());
        self.metrics.services.set(programmed as i64);
        let report = SyncReport {
            full,
            services_changed: changes.len(),
            commands: n,
            elapsed: start.elapsed(),
            nft_elapsed,
            recreated,
        };
        tracing::info!(
            full,
            services = changes.len(),
            commands = n,
            elapsed_ms = report.elapsed.as_secs_f64() * 1e3,
            "proxy synced"
        );
        if !stale.is_empty() {
            conntrack::clear(&self.place, &stale).map_err(SyncError::Conntrack)?;
        }
        Ok(Some(report))
    }

    /// Removes the proxy's tables (e.g. when the component is switched off).
    pub fn cleanup(&self) -> Result<(), NftError> {
        let mut cmds = Vec::new();
        for f in &self.families {
            cmds.push(f.table.cmd("add", "table", ""));
            cmds.push(f.table.cmd("delete", "table", ""));
        }
        self.nft.apply(cmds)
    }
}
