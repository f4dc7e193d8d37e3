//! `capstan-bench pod-startup`: how fast the kubelet takes a pod from
//! create to Running and Ready. A 2-node lab (etcd, capstan-control with
//! its scheduler, a containerd and `capstan-agent --components kubelet`
//! per node, capstan-cni), the test image present; N pods created 10 at a
//! time (each batch waited for), then N at once, each timed from its create
//! call to the first watch event showing it Running and Ready. Then agent
//! RSS with N pods running and agent CPU while idle — the figures of the
//! Kubernetes pod-startup SLO (5 s p99).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use serde::Serialize;

use super::process::{cpu_percent, percentile, rss_mib};
use crate::control::ControlPlane;
use crate::daemon::Daemon;
use crate::Lab;

const NODES: usize = 2;
const LABEL: &str = "capstan-bench=pod-startup";

#[derive(Clone, Debug)]
pub struct Options {
    pub pods: usize,
    pub batch: usize,
    /// Seconds the idle agents' CPU is sampled over.
    pub idle_seconds: u64,
    /// Every pod's HTTP readiness probe period: 1 s makes Ready follow a
    /// failed first probe quickly; Kubernetes' default is 10 s. The idle
    /// CPU includes these probes.
    pub probe_period: u32,
    pub json: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct Round {
    pub mode: String,
    pub pods: usize,
    /// Create to the first watch event with `spec.nodeName` (the
    /// scheduler's share; the rest up to Running is the kubelet's).
    pub bound_p50_ms: f64,
    pub bound_p99_ms: f64,
    pub running_p50_ms: f64,
    pub running_p99_ms: f64,
    pub ready_p50_ms: f64,
    pub ready_p99_ms: f64,
    /// First create to last pod Ready.
    pub wall_seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub rounds: Vec<Round>,
    /// Per node, with every pod of the last round running.
    pub agent_rss_mib: Vec<f64>,
    /// Per node, percent of one core, same pods running, nothing changing.
    pub agent_idle_cpu_percent: Vec<f64>,
    pub probe_period_seconds: u32,
    pub loadavg: String,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "| mode | pods | create→bound p50 | p99 | create→Running p50 | p99 | create→Ready p50 | p99 | all Ready (wall) |"
        )?;
        writeln!(f, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")?;
        for r in &self.rounds {
            writeln!(
                f,
                "| {} | {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.2} s |",
                r.mode,
                r.pods,
                r.bound_p50_ms,
                r.bound_p99_ms,
                r.running_p50_ms,
                r.running_p99_ms,
                r.ready_p50_ms,
                r.ready_p99_ms,
                r.wall_seconds
            )?;
        }
        let list = |v: &[f64], unit: &str| {
            v.iter()
                .map(|x| format!("{x:.1}{unit}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(
            f,
            "\nagent RSS with the pods running (per node): {}; agent CPU idle: {} of a core (readiness probes every {} s); load average {}",
            list(&self.agent_rss_mib, " MiB"),
            list(&self.agent_idle_cpu_percent, " %"),
            self.probe_period_seconds,
            self.loadavg
        )
    }
}

struct Cluster {
    lab: Lab,
    cp: ControlPlane,
    agents: Vec<Daemon>,
}

fn start(lab: Lab) -> anyhow::Result<Cluster> {
    let cp = ControlPlane::start(&lab)?;
    let cni = crate::bins::path("capstan-cni")?;
    let agent = crate::bins::path("capstan-agent")?;
    let mut agents = Vec::new();
    for i in 0..NODES {
        let node = lab.node(i);
        let name = format!("node-{}", i + 1);
        let dir = node.dir().to_path_buf();
        std::fs::copy(&cni, dir.join("opt/cni/bin/capstan")).context("install capstan-cni")?;
        std::fs::write(
            dir.join("etc/cni/net.d/10-capstan.conflist"),
            serde_json::json!({
                "cniVersion": "1.0.0", "name": "capstan",
                "plugins": [{"type": "capstan", "subnet": format!("10.244.{}.1/24", 40 + i),
                             "bridge": "capstan0",
                             "dataDir": dir.join("var/lib/cni/networks/capstan")}]
            })
            .to_string(),
        )?;
        let p = |s: &str| dir.join(s).display().to_string();
        let args: Vec<String> = [
            "--components",
            "kubelet",
            "--node-name",
            &name,
            "--kubeconfig",
            &cp.node_kubeconfig(&name).display().to_string(),
            "--containerd-socket",
            &node.containerd_socket().display().to_string(),
            "--containerd-namespace",
            "capstan",
            "--cni-conf-dir",
            &p("etc/cni/net.d"),
            "--cni-bin-dir",
            &p("opt/cni/bin"),
            "--root-dir",
            &p("var/lib/capstan/kubelet"),
            "--pod-log-dir",
            &p("var/log/pods"),
            "--netns-dir",
            "/run/netns",
            "--netns-prefix",
            &format!("{}-pod{i}-", lab.prefix()),
            "--cgroup-root",
            &lab.cgroup_root(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        agents.push(node.spawn("kubelet", &agent, &args)?);
    }
    Ok(Cluster { lab, cp, agents })
}

fn bench_pod(i: usize, probe_period: u32) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("startup-{i}"), "labels": {"capstan-bench": "pod-startup"}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "web",
                "image": crate::image::TEST_IMAGE,
                "imagePullPolicy": "IfNotPresent",
                "command": ["/bin/capstan-testsrv", "serve", "--http", "0.0.0.0:8080"],
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": probe_period.max(1)},
            }]
        }
    }))?)
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn is_running(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

async fn wait_nodes_ready(client: &kube::Client) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let list = nodes.list(&ListParams::default()).await?;
        let ready = list
            .items
            .iter()
            .filter(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count();
        if ready >= NODES {
            return Ok(());
        }
        if Instant::now() > end {
            bail!("{ready} of {NODES} nodes Ready after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates pods `ids` with at most `in_flight` creates at once, waiting
/// for each group of `group` to be Ready before the next; returns per pod
/// (create sent, bound seen, Running seen, Ready seen).
async fn round(
    pods: &Api<Pod>,
    ids: std::ops::Range<usize>,
    group: usize,
    probe_period: u32,
) -> anyhow::Result<Vec<Times>> {
    let list = pods.list(&ListParams::default().labels(LABEL)).await?;
    let rv = list.metadata.resource_version.unwrap_or_default();
    let stream = pods
        .watch(&WatchParams::default().labels(LABEL).timeout(290), &rv)
        .await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Seen>();
    let watcher = tokio::spawn(async move {
        let mut s = stream.boxed();
        while let Ok(Some(ev)) = s.try_next().await {
            if let WatchEvent::Added(p) | WatchEvent::Modified(p) = ev {
                let seen = Seen {
                    at: Instant::now(),
                    name: p.metadata.name.clone().unwrap_or_default(),
                    bound: p.spec.as_ref().is_some_and(|s| s.node_name.is_some()),
                    running: is_running(&p),
                    ready: is_ready(&p),
                };
                if tx.send(seen).is_err() {
                    break;
                }
            }
        }
    });
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let mut bound: HashMap<String, Instant> = HashMap::new();
    let mut running: HashMap<String, Instant> = HashMap::new();
    let mut ready: HashMap<String, Instant> = HashMap::new();
    let all: Vec<usize> = ids.collect();
    for chunk in all.chunks(group.max(1)) {
        let made: Vec<anyhow::Result<(String, Instant)>> =
            futures::stream::iter(chunk.iter().map(|&i| async move {
                let p = bench_pod(i, probe_period)?;
                let t = Instant::now();
                pods.create(&PostParams::default(), &p).await?;
                Ok((p.metadata.name.unwrap_or_default(), t))
            }))
            .buffer_unordered(chunk.len())
            .collect()
            .await;
        let mut names = Vec::new();
        for r in made {
            let (n, t) = r.context("create a pod")?;
            sent.insert(n.clone(), t);
            names.push(n);
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while !names.iter().all(|n| ready.contains_key(n)) {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(Some(Seen {
                at,
                name,
                bound: bnd,
                running: run,
                ready: rdy,
            })) = tokio::time::timeout(left, rx.recv()).await
            else {
                bail!(
                    "{} of {} pods Ready within 120 s",
                    names.iter().filter(|n| ready.contains_key(*n)).count(),
                    names.len()
                );
            };
            if bnd || run || rdy {
                bound.entry(name.clone()).or_insert(at);
            }
            if run || rdy {
                running.entry(name.clone()).or_insert(at);
            }
            if rdy {
                ready.entry(name).or_insert(at);
            }
        }
    }
    watcher.abort();
    Ok(sent
        .iter()
        .filter_map(|(n, s)| {
            Some(Times {
                sent: *s,
                bound: *bound.get(n)?,
                running: *running.get(n)?,
                ready: *ready.get(n)?,
            })
        })
        .collect())
}

/// One watch event's news about a pod.
struct Seen {
    at: Instant,
    name: String,
    bound: bool,
    running: bool,
    ready: bool,
}

/// When a pod was created and first seen bound, Running and Ready.
struct Times {
    sent: Instant,
    bound: Instant,
    running: Instant,
    ready: Instant,
}

fn summarise(mode: &str, t: &[Times]) -> Round {
    let ms = |f: &dyn Fn(&Times) -> Instant| {
        let mut v: Vec<f64> = t
            .iter()
            .map(|x| f(x).saturating_duration_since(x.sent).as_secs_f64() * 1000.0)
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let bnd = ms(&|x| x.bound);
    let run = ms(&|x| x.running);
    let rdy = ms(&|x| x.ready);
    let first = t.iter().map(|x| x.sent).min();
    let last = t.iter().map(|x| x.ready).max();
    Round {
        mode: mode.into(),
        pods: t.len(),
        bound_p50_ms: percentile(&bnd, 0.50),
        bound_p99_ms: percentile(&bnd, 0.99),
        running_p50_ms: percentile(&run, 0.50),
        running_p99_ms: percentile(&run, 0.99),
        ready_p50_ms: percentile(&rdy, 0.50),
        ready_p99_ms: percentile(&rdy, 0.99),
        wall_seconds: match (first, last) {
            (Some(a), Some(b)) => b.saturating_duration_since(a).as_secs_f64(),
            _ => f64::NAN,
        },
    }
}

async fn delete_all(pods: &Api<Pod>) -> anyhow::Result<()> {
    pods.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels(LABEL),
    )
    .await?;
    let end = Instant::now() + Duration::from_secs(120);
    while !pods
        .list(&ListParams::default().labels(LABEL))
        .await?
        .items
        .is_empty()
    {
        if Instant::now() > end {
            bail!("benchmark pods not gone 120 s after delete");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

pub fn run(opts: &Options) -> anyhow::Result<Report> {
    if opts.pods == 0 || opts.batch == 0 {
        bail!("--pods and --batch must be at least 1");
    }
    let lab = Lab::builder()
        .nodes(NODES)
        .etcd(true)
        .containerd(true)
        .build()?;
    let cluster = start(lab)?;
    let kubeconfig = cluster.cp.admin_kubeconfig();
    let pids: Vec<u32> = cluster.agents.iter().map(Daemon::pid).collect();
    let o = opts.clone();
    let measured = cluster
        .lab
        .underlay()
        .run_in(move || -> anyhow::Result<Report> {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(measure(&kubeconfig, &o, &pids))
        });
    let report = match measured {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            let logs: Vec<String> = (0..NODES)
                .map(|i| {
                    crate::daemon::log_tail(&cluster.lab.node(i).dir().join("logs/kubelet.log"), 15)
                })
                .collect();
            return Err(e.context(format!("agent logs:\n{}", logs.join("\n---\n"))));
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(path) = &opts.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("write {}", path.display()))?;
    }
    Ok(report)
}

async fn measure(kubeconfig: &Path, o: &Options, pids: &[u32]) -> anyhow::Result<Report> {
    let client = super::client::client(kubeconfig).await?;
    wait_nodes_ready(&client).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut rounds = Vec::new();
    let t = round(&pods, 0..o.pods, o.batch, o.probe_period).await?;
    rounds.push(summarise(&format!("{} at a time", o.batch), &t));
    delete_all(&pods).await?;
    let t = round(&pods, o.pods..2 * o.pods, o.pods, o.probe_period).await?;
    rounds.push(summarise("all at once", &t));
    let agent_rss_mib = pids.iter().map(|p| rss_mib(*p)).collect();
    // Let the last status patches and probes settle before sampling idle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let window = Duration::from_secs(o.idle_seconds.max(1));
    let agent_idle_cpu_percent = tokio::task::spawn_blocking({
        let pids = pids.to_vec();
        move || {
            let handles: Vec<_> = pids
                .into_iter()
                .map(|p| std::thread::spawn(move || cpu_percent(p, window)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(f64::NAN))
                .collect::<Vec<f64>>()
        }
    })
    .await?;
    delete_all(&pods).await?;
    Ok(Report {
        rounds,
        agent_rss_mib,
        agent_idle_cpu_percent,
        probe_period_seconds: o.probe_period.max(1),
        loadavg: std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
    })
}
