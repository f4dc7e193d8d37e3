//! The one sync function: drains the change trackers, renders the changed
//! services (all of them on a full sync), diffs against what each has
//! programmed and applies everything, both address families, as ONE nft
//! transaction; then clears stale UDP flows. A failed sync forces the next
//! to be full. It must never touch a table other than `capstan-proxy`.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::conntrack::{self, ConntrackError};
use crate::model::endpoints::usable;
use crate::model::{IpFamily, ServiceKey};
use crate::netns::Place;
use crate::nft::skeleton::{Table, NODEPORTS_MAP, SERVICES_CHAIN, SERVICE_IPS_MAP, TABLE};
use crate::nft::{Nft, NftError};
use crate::plan::Transaction;
use crate::render::{render_service, Context, Rendered};
use crate::tracker::{ServiceState, Tracker};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("apply the proxy's nftables transaction: {0}")]
    Apply(#[source] NftError),
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
}

/// Events a source (a kube watcher, a test) feeds in.
#[derive(Debug, Clone)]
pub enum ProxyEvent {
    ServiceApplied(Service),
    ServiceDeleted(Service),
    SliceApplied(EndpointSlice),
    SliceDeleted(EndpointSlice),
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
}

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
        }
    }

    pub fn handle(&mut self, ev: ProxyEvent) {
        match ev {
            ProxyEvent::ServiceApplied(s) => self.tracker.service_applied(s),
            ProxyEvent::ServiceDeleted(s) => self.tracker.service_deleted(&s),
            ProxyEvent::SliceApplied(s) => self.tracker.slice_applied(s),
            ProxyEvent::SliceDeleted(s) => self.tracker.slice_deleted(&s),
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

    /// Whether someone else altered the dispatch chain (or removed the
    /// table): then only a full sync restores it.
    fn tampered(&self) -> bool {
        self.families.iter().any(|f| {
            match self
                .nft
                .list(&["chain", f.table.family.nft(), TABLE, SERVICES_CHAIN])
            {
                Ok(v) => {
                    let rules: Vec<String> = v["nftables"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter(|i| i.get("rule").is_some())
                                .map(|i| i.to_string())
                                .collect()
                        })
                        .unwrap_or_default();
                    rules.len() != 2
                        || !rules[0].contains(&format!("@{SERVICE_IPS_MAP}"))
                        || !rules[1].contains(&format!("@{NODEPORTS_MAP}"))
                }
                Err(_) => true,
            }
        })
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
        if !self.ready {
            return Ok(None);
        }
        let start = Instant::now();
        let due = self
            .last_full
            .is_none_or(|t| t.elapsed() >= self.full_every);
        let changes = self.tracker.drain();
        let full = self.needs_full || due || (!changes.is_empty() && self.tampered());
        if !full && changes.is_empty() {
            return Ok(None);
        }
        let node = self
            .families
            .first()
            .map(|f| f.ctx.node_name.clone())
            .unwrap_or_default();
        let all = full.then(|| self.tracker.all());
        let mut commands = Vec::new();
        let mut new_programmed: Vec<HashMap<ServiceKey, Rendered>> = Vec::new();
        for fam in &self.families {
            if let Some(all) = &all {
                let mut txn = Transaction::full(&fam.table);
                let empty = Rendered::default();
                let mut programmed = HashMap::with_capacity(all.len());
                for (key, state) in all {
                    let r = render_service(&fam.ctx, state);
                    txn.diff(&fam.table, &empty, &r);
                    programmed.insert(key.clone(), r);
                }
                commands.extend(txn.into_commands(&fam.table));
                new_programmed.push(programmed);
            } else {
                let mut txn = Transaction::default();
                let empty = Rendered::default();
                let mut programmed = HashMap::new();
                for (key, _, current) in &changes {
                    let r = render_service(&fam.ctx, current);
                    txn.diff(&fam.table, fam.programmed.get(key).unwrap_or(&empty), &r);
                    programmed.insert(key.clone(), r);
                }
                commands.extend(txn.into_commands(&fam.table));
                new_programmed.push(programmed);
            }
        }
        let n = commands.len();
        if let Err(e) = self.nft.apply(commands) {
            self.needs_full = true;
            return Err(SyncError::Apply(e));
        }
        for (fam, programmed) in self.families.iter_mut().zip(new_programmed) {
            if full {
                fam.programmed = programmed;
            } else {
                for (key, r) in programmed {
                    if r == Rendered::default() {
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
        let report = SyncReport {
            full,
            services_changed: changes.len(),
            commands: n,
            elapsed: start.elapsed(),
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
            let t = f.table.table_obj();
            cmds.push(crate::nft::expr::cmd("add", "table", t.clone()));
            cmds.push(crate::nft::expr::cmd("delete", "table", t));
        }
        self.nft.apply(cmds)
    }
}
