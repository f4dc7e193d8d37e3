//! The one sync function: drains the change trackers, renders the changed
//! services (all of them on a full sync), diffs against what each has
//! programmed and applies it, both address families together, in the
//! plan's steps (plan.rs): structure as nft text, elements as one netlink
//! batch, stale structure as nft text; then clears stale UDP flows. A
//! failed sync forces the next to be full. It must never touch a table
//! other than `capstan-proxy`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::conntrack::{self, ConntrackError};
use crate::model::endpoints::usable;
use crate::model::{IpFamily, ServiceKey};
use crate::netns::Place;
use crate::nft::netlink::{Batch, NetlinkError, Socket};
use crate::nft::skeleton::{Pick, Table, FIXED_CHAINS, FIXED_SETS, TABLE};
use crate::nft::{genid, Nft, NftError};
use crate::plan::{full_before, write_full_elements, Transaction};
use crate::render::{render_service, Context, Rendered};
use crate::tracker::{ServiceState, Tracker};

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

struct Family {
    table: Table,
    ctx: Context,
    programmed: HashMap<ServiceKey, Rendered>,
    /// How many services list each endpoint address (hairpin set members).
    hairpin_refs: HashMap<IpAddr, usize>,
    /// The shared pick chains that exist.
    picks: BTreeSet<Pick>,
}

/// Reference-count changes for the hairpin set: (new counts, added, removed).
fn hairpin_delta(
    refs: &HashMap<IpAddr, usize>,
    changes: &[(&Rendered, &Rendered)],
) -> (HashMap<IpAddr, usize>, Vec<IpAddr>, Vec<IpAddr>) {
    let mut delta: HashMap<IpAddr, isize> = HashMap::new();
    for (old, new) in changes {
        for ip in old.hairpin.difference(&new.hairpin) {
            *delta.entry(*ip).or_default() -= 1;
        }
        for ip in new.hairpin.difference(&old.hairpin) {
            *delta.entry(*ip).or_default() += 1;
        }
    }
    let (mut counts, mut add, mut del) = (HashMap::new(), Vec::new(), Vec::new());
    for (ip, d) in delta {
        let before = refs.get(&ip).copied().unwrap_or(0);
        let after = (before as isize + d).max(0) as usize;
        if before == 0 && after > 0 {
            add.push(ip);
        } else if before > 0 && after == 0 {
            del.push(ip);
        }
        counts.insert(ip, after);
    }
    add.sort();
    del.sort();
    (counts, add, del)
}

/// A full sync allocates tens of MB of transient text and rendering at
/// 10,000 services; glibc keeps freed heap pages mapped, so without this
/// the agent would hold the sync's peak for good.
fn release_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free heap pages to the kernel; it
    // touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// One health-check node port: which service, how many local endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub service: ServiceKey,
    pub local_endpoints: usize,
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

/// Events a source (a kube watcher, a test) feeds in.
#[derive(Debug, Clone)]
pub enum ProxyEvent {
    ServiceApplied(Service),
    ServiceDeleted(Service),
    SliceApplied(EndpointSlice),
    SliceDeleted(EndpointSlice),
    /// A complete re-list of Services (deletes the ones not in it).
    ServicesReplaced(Vec<Service>),
    /// A complete re-list of EndpointSlices.
    SlicesReplaced(Vec<EndpointSlice>),
    /// The source has delivered its initial list: syncing may start.
    InitDone,
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

/// How often a partial sync first checks that nobody altered the table:
/// listing costs an nft run, too much for every sync at 10,000 services.
pub const DEFAULT_TAMPER_CHECK_INTERVAL: Duration = Duration::from_secs(60);

impl Proxy {
    pub fn new(cfg: ProxyConfig) -> Proxy {
        let families = cfg
            .families
            .iter()
            .map(|(family, cidr)| Family {
                table: Table::new(*family),
                ctx: Context {
                    family: *family,
                    node_name: cfg.node_name.clone(),
                    cluster_cidr: *cidr,
                },
                programmed: HashMap::new(),
                hairpin_refs: HashMap::new(),
                picks: BTreeSet::new(),
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

    pub fn handle(&mut self, ev: ProxyEvent) {
        match ev {
            ProxyEvent::ServiceApplied(s) => self.tracker.service_applied(s),
            ProxyEvent::ServiceDeleted(s) => self.tracker.service_deleted(&s),
            ProxyEvent::SliceApplied(s) => self.tracker.slice_applied(s),
            ProxyEvent::SliceDeleted(s) => self.tracker.slice_deleted(&s),
            ProxyEvent::ServicesReplaced(l) => self.tracker.replace_services(l),
            ProxyEvent::SlicesReplaced(l) => self.tracker.replace_slices(l),
            ProxyEvent::InitDone => self.ready = true,
        }
    }

    /// Whether the initial state is known (nothing is written before: a
    /// restarted agent leaves the old rules in place until then).
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    pub fn has_pending(&self) -> bool {
        self.tracker.has_pending()
    }

    /// The proxy's metrics, to register with the agent's registry.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// How often partial syncs check the table for outside changes.
    pub fn set_tamper_check_interval(&mut self, every: Duration) {
        self.tamper_every = every;
    }

    fn tamper_check_due(&mut self) -> bool {
        let due = self
            .last_tamper_check
            .is_none_or(|t| t.elapsed() >= self.tamper_every);
        if due {
            self.last_tamper_check = Some(Instant::now());
        }
        due
    }

    /// Asks for the next sync to be full.
    pub fn force_full(&mut self) {
        self.needs_full = true;
    }

    /// The health-check node ports to serve, with their local endpoint counts.
    pub fn health_checks(&self) -> BTreeMap<u16, HealthCheck> {
        self.health
            .iter()
            .map(|(k, (port, n))| {
                (
                    *port,
                    HealthCheck {
                        service: k.clone(),
                        local_endpoints: *n,
                    },
                )
            })
            .collect()
    }

    /// Whether anyone else committed to nf_tables in the namespace since
    /// our last transaction (the generation id moved): then the table may
    /// have been altered and only a full sync restores it. Listing the
    /// table to find out would cost more than the full sync (nft fetches
    /// every element: ~4 s at 10,000 services, against < 1 s). A foreign
    /// commit landing between our commit and our reading of the id goes
    /// unnoticed until the next foreign commit or the periodic full resync.
    fn tampered(&mut self) -> bool {
        let now = self.generation();
        now.is_none() || now != self.generation
    }

    /// The generation id, read on the proxy's socket.
    fn generation(&mut self) -> Option<u32> {
        let now = self.socket().ok().map(|s| s.generation());
        match now {
            Some(Ok(g)) => Some(g),
            _ => {
                self.socket = None;
                genid::generation(&self.place).ok()
            }
        }
    }

    fn socket(&mut self) -> Result<&Socket, SyncError> {
        if self.socket.is_none() {
            let s =
                Socket::open(&self.place).map_err(|e| SyncError::Elements(NetlinkError::Io(e)))?;
            self.socket = Some(s);
        }
        self.socket
            .as_ref()
            .ok_or_else(|| SyncError::Elements(NetlinkError::Protocol("no socket".into())))
    }

    /// Runs the three steps; the first failure stops it.
    fn apply(
        &mut self,
        full: bool,
        before: Vec<String>,
        batch: Batch,
        mut after: Vec<String>,
        desired: &[(BTreeSet<String>, BTreeSet<String>)],
    ) -> Result<(usize, bool), SyncError> {
        let mut n = before.len() + batch.len() + after.len();
        let mut recreated = false;
        if let Err(e) = self.nft.apply(before.clone()) {
            if !full {
                return Err(SyncError::Apply(e));
            }
            // The table holds something the skeleton cannot be written
            // over (e.g. a map of another type): start from an empty one.
            tracing::warn!(error = %e, "proxy table not restorable in place; re-creating it");
            let mut fresh = Vec::with_capacity(before.len() + 2 * self.families.len());
            for f in &self.families {
                fresh.push(f.table.cmd("add", "table", ""));
                fresh.push(f.table.cmd("delete", "table", ""));
            }
            fresh.extend(before);
            self.nft.apply(fresh).map_err(SyncError::Apply)?;
            recreated = true;
        }
        let applied = self.socket()?.apply(batch);
        if let Err(e) = applied {
            self.socket = None;
            return Err(SyncError::Elements(e));
        }
        if full {
            // What the table holds beyond what is desired: left by an
            // earlier run, or added by someone else.
            for (f, (chains, sets)) in self.families.iter().zip(desired) {
                let names = match self.socket.as_ref() {
                    Some(s) => s.names(f.table.family, TABLE),
                    None => continue,
                }
                .map_err(SyncError::Elements)?;
                let mut t = Transaction::default();
                for c in names.chains.iter().filter(|c| !chains.contains(*c)) {
                    t.stale_chain(&f.table, c);
                }
                for s in names.sets.iter().filter(|s| !sets.contains(*s)) {
                    t.stale_set(&f.table, s);
                }
                after.extend(t.after());
            }
            n += after.len();
        }
        self.nft.apply(after).map_err(SyncError::Apply)?;
        Ok((n, recreated))
    }

    fn update_health(&mut self, key: &ServiceKey, state: &ServiceState, node: &str) {
        self.health.remove(key);
        for (info, eps) in state.values() {
            if let Some(port) = info.health_check_node_port {
                let n = usable(eps, Some(node)).len();
                self.health.insert(key.clone(), (port, n));
            }
        }
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
        type Programmed = (HashMap<ServiceKey, Rendered>, HashMap<IpAddr, usize>);
        let mut new_programmed: Vec<Programmed> = Vec::new();
        let mut new_picks: Vec<BTreeSet<Pick>> = Vec::new();
        for fam in &self.families {
            let empty = Rendered::default();
            if let Some(all) = &all {
                let mut programmed = HashMap::with_capacity(all.len());
                for (key, state) in all {
                    programmed.insert(key.clone(), render_service(&fam.ctx, state));
                }
                let pairs: Vec<(&Rendered, &Rendered)> =
                    programmed.values().map(|r| (&empty, r)).collect();
                let (counts, add, _) = hairpin_delta(&HashMap::new(), &pairs);
                drop(pairs);
                let picks: BTreeSet<Pick> = programmed
                    .values()
                    .flat_map(|r| r.picks.iter().copied())
                    .collect();
                let picks_list: Vec<Pick> = picks.iter().copied().collect();
                before.extend(full_before(
                    &fam.table,
                    programmed.values(),
                    &picks_list,
                    fam.ctx.cluster_cidr,
                ));
                write_full_elements(&fam.table, programmed.values(), &add, &mut batch);
                let mut chains: BTreeSet<String> =
                    FIXED_CHAINS.iter().map(|c| c.to_string()).collect();
                chains.extend(picks.iter().map(Pick::chain));
                let mut sets: BTreeSet<String> = FIXED_SETS.iter().map(|s| s.to_string()).collect();
                for r in programmed.values() {
                    chains.extend(r.chains.keys().cloned());
                    sets.extend(r.sets.keys().cloned());
                }
                desired.push((chains, sets));
                new_programmed.push((programmed, counts));
                new_picks.push(picks);
            } else {
                let mut txn = Transaction::default();
                let mut programmed = HashMap::new();
                let mut picks = fam.picks.clone();
                for (key, _, current) in &changes {
                    let r = render_service(&fam.ctx, current);
                    for p in &r.picks {
                        if picks.insert(*p) {
                            txn.ensure_pick(&fam.table, p, fam.ctx.cluster_cidr);
                        }
                    }
                    txn.diff(&fam.table, fam.programmed.get(key).unwrap_or(&empty), &r);
                    programmed.insert(key.clone(), r);
                }
                let pairs: Vec<(&Rendered, &Rendered)> = programmed
                    .iter()
                    .map(|(k, r)| (fam.programmed.get(k).unwrap_or(&empty), r))
                    .collect();
                let (counts, add, del) = hairpin_delta(&fam.hairpin_refs, &pairs);
                txn.hairpin(&add, &del);
                before.extend(txn.before());
                txn.elements.write(&fam.table, &mut batch);
                after.extend(txn.after());
                new_programmed.push((programmed, counts));
                new_picks.push(picks);
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
        for ((fam, (programmed, counts)), picks) in
            self.families.iter_mut().zip(new_programmed).zip(new_picks)
        {
            fam.picks = picks;
            if full {
                fam.programmed = programmed;
                fam.hairpin_refs = counts;
            } else {
                for (ip, n) in counts {
                    if n == 0 {
                        fam.hairpin_refs.remove(&ip);
                    } else {
                        fam.hairpin_refs.insert(ip, n);
                    }
                }
                for (key, r) in programmed {
                    if r.is_empty() {
                        fam.programmed.remove(&key);
                    } else {
                        fam.programmed.insert(key, r);
                    }
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn with_hairpin(ips: &[&str]) -> Rendered {
        Rendered {
            hairpin: ips.iter().map(|s| s.parse().unwrap()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn hairpin_members_are_counted_across_services() {
        let (empty, a, b) = (
            Rendered::default(),
            with_hairpin(&["10.0.0.1"]),
            with_hairpin(&["10.0.0.1", "10.0.0.2"]),
        );
        // Two services list 10.0.0.1: added once.
        let (counts, add, del) = hairpin_delta(&HashMap::new(), &[(&empty, &a), (&empty, &b)]);
        assert_eq!(add.len(), 2);
        assert!(del.is_empty());
        assert_eq!(counts[&"10.0.0.1".parse().unwrap()], 2);
        // One of them goes: 10.0.0.1 stays (still referenced), 10.0.0.2 goes.
        let (counts2, add, del) = hairpin_delta(&counts, &[(&b, &empty)]);
        assert!(add.is_empty());
        assert_eq!(del, vec!["10.0.0.2".parse::<IpAddr>().unwrap()]);
        assert_eq!(counts2[&"10.0.0.1".parse().unwrap()], 1);
    }
}
