//! `capstan-bench api`: capstan-control's API latency as clients see it. A
//! lab with etcd and capstan-control alone (no scheduler, no controllers:
//! nothing else writes), C concurrent kube-rs clients, and per-call latency
//! of create, get, merge-patch and list, create→ADDED watch delivery, and
//! the server's RSS with N pods stored. It measures; it never tunes.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Container, Namespace, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde::Serialize;
use tokio::sync::Mutex;

use super::process::{percentile, rss_mib};
use crate::control::ControlPlane;
use crate::Lab;

/// The goals, on the 2-core lab machine.
pub const MUTATING_P99_GOAL_MS: f64 = 25.0;
pub const WATCH_P99_GOAL_MS: f64 = 10.0;

const NS_CREATE: &str = "api-create";
const NS_LIST: &str = "api-list";
const NS_STORED: &str = "api-stored";
/// Clients listing at once: a list of 1,000 pods is a heavy read, and the
/// question is its latency, not how many the server survives at once.
const LIST_CLIENTS: usize = 4;
const LISTS_PER_CLIENT: usize = 25;

#[derive(Clone, Debug)]
pub struct Options {
    pub clients: usize,
    /// Pods in the listed namespace.
    pub pods: usize,
    /// Calls per client per operation.
    pub ops: usize,
    /// Pods stored in total when the server's memory is sampled.
    pub stored: usize,
    /// Open-loop rounds after the closed-loop ones: creates (with watch
    /// delivery) and patches sent at this many calls per second in all.
    pub rates: Vec<f64>,
    pub json: Option<PathBuf>,
}

/// One operation's latency over all clients.
#[derive(Clone, Debug, Serialize)]
pub struct Cell {
    /// Stable key: create, watch, get, patch, list.
    pub op: String,
    /// What the row measured, for the table.
    pub label: String,
    pub clients: usize,
    /// Calls per second in all for an open-loop round; None: closed loop.
    pub rate_per_s: Option<f64>,
    pub samples: usize,
    pub errors: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Successful calls per second over the phase's wall time.
    pub per_second: f64,
}

#[derive(Debug, Serialize)]
pub struct Goals {
    /// The worse p99 of create and patch.
    pub mutating_p99_ms: f64,
    pub mutating_goal_ms: f64,
    pub mutating_met: bool,
    pub watch_p99_ms: f64,
    pub watch_goal_ms: f64,
    pub watch_met: bool,
    /// The same goals per open-loop rate.
    pub open_loop: Vec<RateGoals>,
}

#[derive(Debug, Serialize)]
pub struct RateGoals {
    pub rate_per_s: f64,
    pub mutating_p99_ms: f64,
    pub mutating_met: bool,
    pub watch_p99_ms: f64,
    pub watch_met: bool,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub clients: usize,
    pub ops_per_client: usize,
    pub list_pods: usize,
    pub cells: Vec<Cell>,
    pub goals: Goals,
    pub pods_stored: usize,
    pub control_rss_idle_mib: f64,
    pub control_rss_stored_mib: f64,
    pub etcd_db_mib: Option<f64>,
    /// A list of every stored pod (all namespaces), as an informer's first
    /// sync: None when it returned them all.
    pub list_all_error: Option<String>,
    pub cpus: usize,
    pub loadavg: String,
    pub anchor: String,
}

const ANCHOR: &str = "no kube-apiserver on this machine: compared against the issue's goals only";

fn ms(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else {
        format!("{v:.1} ms")
    }
}

fn met(b: bool) -> &'static str {
    if b {
        "met"
    } else {
        "not met"
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "| operation | clients | calls | errors | p50 | p90 | p99 | max | calls/s |"
        )?;
        writeln!(f, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")?;
        for c in &self.cells {
            writeln!(
                f,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {:.0} |",
                c.label,
                c.clients,
                c.samples,
                c.errors,
                ms(c.p50_ms),
                ms(c.p90_ms),
                ms(c.p99_ms),
                ms(c.max_ms),
                c.per_second
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "| p99 mutating < {:.0} ms | watch p99 < {:.0} ms | pods stored | capstan-control RSS idle → stored | etcd DB |",
            self.goals.mutating_goal_ms, self.goals.watch_goal_ms
        )?;
        writeln!(f, "|---|---|---:|---:|---:|")?;
        let db = self
            .etcd_db_mib
            .map(|v| format!("{v:.1} MiB"))
            .unwrap_or_else(|| "–".into());
        writeln!(
            f,
            "| {} ({}) | {} ({}) | {} | {:.0} → {:.0} MiB | {} |",
            met(self.goals.mutating_met),
            ms(self.goals.mutating_p99_ms),
            met(self.goals.watch_met),
            ms(self.goals.watch_p99_ms),
            self.pods_stored,
            self.control_rss_idle_mib,
            self.control_rss_stored_mib,
            db
        )?;
        if !self.goals.open_loop.is_empty() {
            writeln!(
                f,
                "\n| open loop, calls/s in all | p99 mutating < {:.0} ms | watch p99 < {:.0} ms |",
                self.goals.mutating_goal_ms, self.goals.watch_goal_ms
            )?;
            writeln!(f, "|---:|---|---|")?;
            for g in &self.goals.open_loop {
                writeln!(
                    f,
                    "| {:.0} | {} ({}) | {} ({}) |",
                    g.rate_per_s,
                    met(g.mutating_met),
                    ms(g.mutating_p99_ms),
                    met(g.watch_met),
                    ms(g.watch_p99_ms)
                )?;
            }
        }
        if let Some(e) = &self.list_all_error {
            writeln!(f, "\nlist of all {} pods failed: {e}", self.pods_stored)?;
        }
        writeln!(
            f,
            "\n{} cpus, load average {}; {}",
            self.cpus, self.loadavg, self.anchor
        )
    }
}

/// Latencies (ms) and failures of one phase, summarised.
fn cell(
    op: &str,
    label: &str,
    clients: usize,
    rate_per_s: Option<f64>,
    mut lat: Vec<f64>,
    errors: usize,
    wall: Duration,
) -> Cell {
    lat.sort_by(f64::total_cmp);
    Cell {
        op: op.into(),
        label: label.into(),
        clients,
        rate_per_s,
        samples: lat.len(),
        errors,
        p50_ms: percentile(&lat, 0.50),
        p90_ms: percentile(&lat, 0.90),
        p99_ms: percentile(&lat, 0.99),
        max_ms: lat.last().copied().unwrap_or(f64::NAN),
        per_second: lat.len() as f64 / wall.as_secs_f64().max(1e-9),
    }
}

/// etcd's bbolt file: what the stored pods cost on disk (with free pages).
fn etcd_db_mib(lab_dir: &Path) -> Option<f64> {
    std::fs::metadata(lab_dir.join("etcd/member/snap/db"))
        .ok()
        .map(|m| m.len() as f64 / (1024.0 * 1024.0))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// A small valid pod, as a client would send it.
fn bench_pod(name: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([(
                "app".to_string(),
                "api-bench".to_string(),
            )])),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                image: Some("capstan.local/busybox:lab".into()),
                command: Some(vec!["sleep".into(), "3600".into()]),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    }
}

fn create_name(client: usize, op: usize) -> String {
    named("c", client, op)
}

/// A pod of one create round: `c` for the closed loop, `r<i>` for the
/// i-th open-loop rate.
fn named(round: &str, client: usize, op: usize) -> String {
    format!("{round}-{client:03}-{op:05}")
}

/// xorshift: which existing pod a get asks for, without a shared RNG.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

pub fn run(opts: &Options) -> anyhow::Result<Report> {
    if opts.clients == 0 || opts.pods == 0 || opts.ops == 0 {
        bail!("--clients, --pods and --ops must be positive");
    }
    if let Some(r) = opts.rates.iter().find(|r| !(r.is_finite() && **r > 0.0)) {
        bail!("--rate {r}: a rate is a positive number of calls per second");
    }
    // kube's TLS needs a process-wide provider when the build enables more
    // than one (or none by default); an earlier install is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let lab = Lab::builder().nodes(0).etcd(true).build()?;
    let cp = ControlPlane::start_with(
        &lab,
        &lab.etcd_endpoint(),
        &[
            "--scheduler=false".to_string(),
            "--controllers=".to_string(),
        ],
    )?;
    let kubeconfig = cp.admin_kubeconfig();
    let pid = cp.pid();
    let o = opts.clone();
    let Measured {
        cells,
        pods_stored,
        rss_idle,
        rss_stored,
        list_all_error,
    } = lab.underlay().run_in(move || -> anyhow::Result<_> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        rt.block_on(measure(kubeconfig, o, pid))
    })??;
    let worst = |op: &str, rate: Option<f64>| {
        cells
            .iter()
            .filter(|c| c.op == op && c.rate_per_s == rate)
            .map(|c| c.p99_ms)
            .fold(f64::NAN, f64::max)
    };
    let mutating_p99_ms = worst("create", None).max(worst("patch", None));
    let watch_p99_ms = worst("watch", None);
    let open_loop = opts
        .rates
        .iter()
        .map(|&r| {
            let mutating_p99_ms = worst("create", Some(r)).max(worst("patch", Some(r)));
            let watch_p99_ms = worst("watch", Some(r));
            RateGoals {
                rate_per_s: r,
                mutating_p99_ms,
                mutating_met: mutating_p99_ms < MUTATING_P99_GOAL_MS,
                watch_p99_ms,
                watch_met: watch_p99_ms < WATCH_P99_GOAL_MS,
            }
        })
        .collect();
    let report = Report {
        clients: opts.clients,
        ops_per_client: opts.ops,
        list_pods: opts.pods,
        goals: Goals {
            mutating_p99_ms,
            mutating_goal_ms: MUTATING_P99_GOAL_MS,
            mutating_met: mutating_p99_ms < MUTATING_P99_GOAL_MS,
            watch_p99_ms,
            watch_goal_ms: WATCH_P99_GOAL_MS,
            watch_met: watch_p99_ms < WATCH_P99_GOAL_MS,
            open_loop,
        },
        cells,
        pods_stored,
        control_rss_idle_mib: rss_idle,
        control_rss_stored_mib: rss_stored,
        etcd_db_mib: etcd_db_mib(&lab.dir()),
        list_all_error,
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg: loadavg(),
        anchor: ANCHOR.into(),
    };
    if let Some(path) = &opts.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("write {}", path.display()))?;
    }
    Ok(report)
}

/// Runs `per_client` calls on each of `clients`, each client sequential
/// (a client waits for its answer), all clients at once. Returns the
/// successful calls' latencies in ms, the failures, and the wall time.
///
/// Closed loop (`rate` None): each client calls again as soon as it has
/// its answer, so the latencies are those of a saturated server (by
/// Little's law, clients / throughput). Open loop (`rate` Some): call
/// `j` of client `k` is due at `(j * clients + k) / rate` seconds, and its
/// latency counts from when it was due, so a late answer also charges the
/// calls it delayed (no coordinated omission, as wrk2 measures).
async fn phase<F, Fut>(
    clients: &[kube::Client],
    per_client: usize,
    rate: Option<f64>,
    call: F,
) -> (Vec<f64>, usize, Duration)
where
    F: Fn(kube::Client, usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), kube::Error>> + Send,
{
    let start = Instant::now();
    let n = clients.len();
    let tasks: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let c = c.clone();
            let call = call.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_client);
                let mut errors = 0;
                for j in 0..per_client {
                    let t = match rate {
                        Some(r) => {
                            let due = start + Duration::from_secs_f64((j * n + k) as f64 / r);
                            tokio::time::sleep_until(due.into()).await;
                            due
                        }
                        None => Instant::now(),
                    };
                    match call(c.clone(), k, j).await {
                        Ok(()) => lat.push(t.elapsed().as_secs_f64() * 1000.0),
                        Err(e) => {
                            errors += 1;
                            tracing::debug!(client = k, op = j, error = %e, "call failed");
                        }
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        match t.await {
            Ok((l, e)) => {
                lat.extend(l);
                errors += e;
            }
            Err(_) => errors += per_client,
        }
    }
    (lat, errors, start.elapsed())
}

async fn ensure_namespace(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    let ns: Api<Namespace> = Api::all(client.clone());
    let obj = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    match ns.create(&PostParams::default(), &obj).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e).with_context(|| format!("create namespace {name}")),
    }
}

/// Creates `names` in `ns` with `concurrency` calls in flight; unmeasured.
async fn fill(
    clients: &[kube::Client],
    ns: &str,
    names: Vec<String>,
    concurrency: usize,
) -> anyhow::Result<()> {
    let apis: Vec<Api<Pod>> = clients
        .iter()
        .map(|c| Api::namespaced(c.clone(), ns))
        .collect();
    let results: Vec<Result<(), kube::Error>> =
        futures::stream::iter(names.into_iter().enumerate().map(|(i, name)| {
            let api = apis[i % apis.len()].clone();
            async move {
                match api.create(&PostParams::default(), &bench_pod(&name)).await {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                    Err(e) => Err(e),
                }
            }
        }))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let failed = results.iter().filter(|r| r.is_err()).count();
    if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
        bail!("{failed} creates failed while filling {ns}, first: {e}");
    }
    Ok(())
}

struct Measured {
    cells: Vec<Cell>,
    pods_stored: usize,
    rss_idle: f64,
    rss_stored: f64,
    list_all_error: Option<String>,
}

async fn measure(kubeconfig: PathBuf, o: Options, pid: u32) -> anyhow::Result<Measured> {
    let cfg = super::client::config(&kubeconfig).await?;
    // One kube client (own connections) per simulated client, as C
    // separate programs would have.
    let clients: Vec<kube::Client> = (0..o.clients)
        .map(|_| kube::Client::try_from(cfg.clone()))
        .collect::<Result<_, _>>()?;
    let admin = clients[0].clone();
    for ns in [NS_CREATE, NS_LIST, NS_STORED] {
        ensure_namespace(&admin, ns).await?;
    }
    let rss_idle = rss_mib(pid);
    let mut cells = Vec::new();

    // (1) + (4): creates, with a watcher started before them.
    let (create, watch, mut created) =
        creates_watched(&admin, &clients, o.ops, "c", None, "create").await?;
    cells.push(create);
    cells.push(watch);

    // (2) gets of random existing pods.
    let (n_clients, n_ops) = (o.clients, o.ops);
    let (lat, errors, wall) = phase(&clients, o.ops, None, move |c, k, j| async move {
        let mut s = ((k as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)) ^ (j as u64 + 1);
        let pick = next(&mut s) as usize;
        let name = create_name(pick % n_clients, (pick >> 16) % n_ops);
        let api: Api<Pod> = Api::namespaced(c, NS_CREATE);
        api.get(&name).await.map(|_| ())
    })
    .await;
    cells.push(cell(
        "get",
        "get (random pod)",
        o.clients,
        None,
        lat,
        errors,
        wall,
    ));

    // (5) merge patches, each client on its own pods (no conflicts).
    cells.push(patches(&clients, o.ops, "c", None, "patch (merge, labels)").await);

    // The same writes at fixed rates: latency at a load, not at saturation.
    for (i, &r) in o.rates.iter().enumerate() {
        let round = format!("r{i}");
        let (create, watch, n) = creates_watched(
            &admin,
            &clients,
            o.ops,
            &round,
            Some(r),
            &format!("create, open loop {r:.0}/s"),
        )
        .await?;
        created += n;
        cells.push(create);
        cells.push(watch);
        cells.push(
            patches(
                &clients,
                o.ops,
                &round,
                Some(r),
                &format!("patch, open loop {r:.0}/s"),
            )
            .await,
        );
    }

    // (3) lists of a namespace holding exactly --pods pods.
    let names: Vec<String> = (0..o.pods).map(|i| format!("l-{i:06}")).collect();
    fill(&clients, NS_LIST, names, o.clients).await?;
    let listers = &clients[..LIST_CLIENTS.min(clients.len())];
    let want = o.pods;
    let (lat, errors, wall) = phase(listers, LISTS_PER_CLIENT, None, move |c, _, _| async move {
        let api: Api<Pod> = Api::namespaced(c, NS_LIST);
        let l = api.list(&ListParams::default()).await?;
        if l.items.len() != want {
            tracing::warn!(got = l.items.len(), want, "list returned another count");
        }
        Ok(())
    })
    .await;
    cells.push(cell(
        "list",
        &format!("list ({} pods)", o.pods),
        listers.len(),
        None,
        lat,
        errors,
        wall,
    ));

    // (6) memory with --stored pods stored in all.
    let have = created + o.pods;
    let more: Vec<String> = (0..o.stored.saturating_sub(have))
        .map(|i| format!("s-{i:06}"))
        .collect();
    let pods_stored = have + more.len();
    let t = Instant::now();
    fill(&clients, NS_STORED, more, o.clients).await?;
    tracing::info!(wall_s = t.elapsed().as_secs_f64(), pods_stored, "stored");
    // A list of everything, as an informer's first sync would do.
    // Its failure is a finding to report, not a reason to lose the run.
    let all: Api<Pod> = Api::all(admin.clone());
    let list_all_error = match all.list(&ListParams::default()).await {
        Ok(l) if l.items.len() == pods_stored => None,
        Ok(l) => Some(format!("listed {} of {pods_stored}", l.items.len())),
        Err(e) => Some(e.to_string()),
    };
    if let Some(e) = &list_all_error {
        tracing::warn!(error = %e, "list of all stored pods failed");
    }
    let rss_stored = rss_mib(pid);
    Ok(Measured {
        cells,
        pods_stored,
        rss_idle,
        rss_stored,
        list_all_error,
    })
}

/// One round of `ops` creates per client into `NS_CREATE` (names from
/// `round`), timed per call, and each create's delivery to a watcher that
/// was started before the round: (create cell, watch cell, pods created).
async fn creates_watched(
    admin: &kube::Client,
    clients: &[kube::Client],
    ops: usize,
    round: &str,
    rate: Option<f64>,
    label: &str,
) -> anyhow::Result<(Cell, Cell, usize)> {
    let watched: Api<Pod> = Api::namespaced(admin.clone(), NS_CREATE);
    let rv = watched
        .list_metadata(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let stream = watched
        .watch(&WatchParams::default().timeout(290), &rv)
        .await
        .context("start the watch")?;
    let expected = clients.len() * ops;
    let prefix = format!("{round}-");
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen_w = seen.clone();
    let watcher = tokio::spawn(async move {
        let mut stream = stream.boxed();
        loop {
            match stream.try_next().await {
                Ok(Some(WatchEvent::Added(p))) => {
                    let at = Instant::now();
                    let name = p.metadata.name.unwrap_or_default();
                    if !name.starts_with(&prefix) {
                        continue;
                    }
                    let mut s = seen_w.lock().await;
                    s.entry(name).or_insert(at);
                    if s.len() >= expected {
                        return;
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return,
            }
        }
    });
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let sent_c = sent.clone();
    let round_c = round.to_string();
    let (lat, errors, wall) = phase(clients, ops, rate, move |c, k, j| {
        let sent = sent_c.clone();
        let name = named(&round_c, k, j);
        async move {
            let api: Api<Pod> = Api::namespaced(c, NS_CREATE);
            let pod = bench_pod(&name);
            // Delivery counts from the send, not from when the call was
            // due: it measures the server's path from write to watchers.
            let t = Instant::now();
            sent.lock().await.insert(name, t);
            api.create(&PostParams::default(), &pod).await.map(|_| ())
        }
    })
    .await;
    tracing::info!(round, wall_s = wall.as_secs_f64(), errors, "creates done");
    let create = cell("create", label, clients.len(), rate, lat, errors, wall);
    let created = expected - errors;
    // Every event for a successful create is due; give the tail a deadline.
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.lock().await.len() < created && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    watcher.abort();
    let (delivery, missing) = {
        let sent = sent.lock().await;
        let seen = seen.lock().await;
        let d: Vec<f64> = seen
            .iter()
            .filter_map(|(n, at)| {
                sent.get(n)
                    .map(|t| at.saturating_duration_since(*t).as_secs_f64() * 1000.0)
            })
            .collect();
        let missing = created.saturating_sub(d.len());
        (d, missing)
    };
    let watch_label = match rate {
        None => "watch delivery (create→ADDED)".to_string(),
        Some(r) => format!("watch delivery, open loop {r:.0}/s"),
    };
    let watch = cell("watch", &watch_label, 1, rate, delivery, missing, wall);
    Ok((create, watch, created))
}

/// One round of merge patches, each client on its own pods of `round`
/// (no conflicts).
async fn patches(
    clients: &[kube::Client],
    ops: usize,
    round: &str,
    rate: Option<f64>,
    label: &str,
) -> Cell {
    let round_c = round.to_string();
    let (lat, errors, wall) = phase(clients, ops, rate, move |c, k, j| {
        let name = named(&round_c, k, j);
        async move {
            let api: Api<Pod> = Api::namespaced(c, NS_CREATE);
            let patch = serde_json::json!({"metadata": {"labels": {"bench-rev": j.to_string()}}});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(|_| ())
        }
    })
    .await;
    cell("patch", label, clients.len(), rate, lat, errors, wall)
}
