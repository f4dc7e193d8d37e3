//! `capstan-bench scheduler`: how fast capstan-control binds pods. A lab
//! with etcd and capstan-control (node lifecycle off: the nodes are
//! simulated, registered Ready with allocatable resources, no agents),
//! then N pods created by C concurrent clients while a watch records when
//! each pod's `spec.nodeName` appears. Reports throughput over the whole
//! run and create→bind latency percentiles, the figures kube-scheduler's
//! scheduler_perf reports.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{
    Container, Node, NodeCondition, NodeStatus, Pod, PodSpec, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde::Serialize;

use super::process::{percentile, rss_mib};
use crate::control::ControlPlane;
use crate::Lab;

#[derive(Clone, Debug)]
pub struct Options {
    pub nodes: usize,
    pub pods: usize,
    pub concurrency: usize,
    pub json: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub nodes: usize,
    pub pods: usize,
    pub concurrency: usize,
    /// From the first create to the last create's answer.
    pub create_seconds: f64,
    /// From the first create to the last bind seen.
    pub all_bound_seconds: f64,
    pub pods_per_second: f64,
    pub bind_p50_ms: f64,
    pub bind_p90_ms: f64,
    pub bind_p99_ms: f64,
    /// Pods per node at the end: min and max (spreading).
    pub per_node_min: usize,
    pub per_node_max: usize,
    pub control_rss_mib: f64,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "| pods | nodes | clients | creates done | all bound | pods/s bound | create→bind p50 | p90 | p99 | pods per node (min–max) | capstan-control RSS |"
        )?;
        writeln!(f, "|---|---|---|---|---|---|---|---|---|---|---|")?;
        writeln!(
            f,
            "| {} | {} | {} | {:.2} s | {:.2} s | {:.0} | {:.1} ms | {:.1} ms | {:.1} ms | {}–{} | {:.0} MiB |",
            self.pods,
            self.nodes,
            self.concurrency,
            self.create_seconds,
            self.all_bound_seconds,
            self.pods_per_second,
            self.bind_p50_ms,
            self.bind_p90_ms,
            self.bind_p99_ms,
            self.per_node_min,
            self.per_node_max,
            self.control_rss_mib
        )
    }
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect()
}

fn sim_node(i: usize) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(format!("sim-node-{i:04}")),
            labels: Some(BTreeMap::from([(
                "kubernetes.io/hostname".to_string(),
                format!("sim-node-{i:04}"),
            )])),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn sim_status() -> NodeStatus {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    NodeStatus {
        capacity: Some(quantities(&[
            ("cpu", "32"),
            ("memory", "64Gi"),
            ("pods", "110"),
        ])),
        allocatable: Some(quantities(&[
            ("cpu", "32"),
            ("memory", "64Gi"),
            ("pods", "110"),
        ])),
        conditions: Some(vec![NodeCondition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: Some("KubeletReady".into()),
            last_heartbeat_time: Some(now.clone()),
            last_transition_time: Some(now),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

fn bench_pod(i: usize) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(format!("sched-{i:05}")),
            labels: Some(BTreeMap::from([(
                "app".to_string(),
                "sched-bench".to_string(),
            )])),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                image: Some("capstan.local/busybox:lab".into()),
                resources: Some(ResourceRequirements {
                    requests: Some(quantities(&[("cpu", "10m"), ("memory", "16Mi")])),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    }
}

pub fn run(opts: &Options) -> anyhow::Result<Report> {
    if opts.nodes == 0 || opts.pods == 0 || opts.concurrency == 0 {
        bail!("--nodes, --pods and --clients must be positive");
    }
    let lab = Lab::builder().nodes(0).etcd(true).build()?;
    // The nodes are simulated: nobody renews their leases.
    let cp = ControlPlane::start_with(
        &lab,
        &lab.etcd_endpoint(),
        &["--controllers=*,-nodelifecycle".to_string()],
    )?;
    let kubeconfig = cp.admin_kubeconfig();
    let o = opts.clone();
    let mut report = lab.underlay().run_in(move || -> anyhow::Result<Report> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        rt.block_on(measure(kubeconfig, o))
    })??;
    report.control_rss_mib = rss_mib(cp.pid());
    if let Some(path) = &opts.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("write {}", path.display()))?;
    }
    Ok(report)
}

async fn measure(kubeconfig: PathBuf, o: Options) -> anyhow::Result<Report> {
    let client = super::client::client(&kubeconfig).await?;
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    let made: Vec<anyhow::Result<()>> = futures::stream::iter((0..o.nodes).map(|i| {
        let nodes = nodes.clone();
        async move {
            let n = sim_node(i);
            let name = n.metadata.name.clone().unwrap_or_default();
            nodes.create(&PostParams::default(), &n).await?;
            let patch = serde_json::json!({ "status": sim_status() });
            nodes
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            Ok(())
        }
    }))
    .buffer_unordered(32)
    .collect()
    .await;
    for r in made {
        r.context("register a simulated node")?;
    }
    // Let the scheduler's node watch catch up before the clock starts.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let list = pods.list(&Default::default()).await?;
    let rv = list.metadata.resource_version.unwrap_or_default();
    let watch = pods
        .watch(&WatchParams::default().timeout(290), &rv)
        .await?;
    let total = o.pods;
    let watcher = tokio::spawn(async move {
        let mut bound: HashMap<String, (Instant, String)> = HashMap::new();
        let mut stream = watch.boxed();
        while bound.len() < total {
            match stream.try_next().await {
                Ok(Some(WatchEvent::Added(p))) | Ok(Some(WatchEvent::Modified(p))) => {
                    let node = p
                        .spec
                        .as_ref()
                        .and_then(|s| s.node_name.clone())
                        .unwrap_or_default();
                    if !node.is_empty() {
                        let name = p.metadata.name.clone().unwrap_or_default();
                        bound.entry(name).or_insert((Instant::now(), node));
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        bound
    });

    let start = Instant::now();
    let created: Vec<anyhow::Result<(String, Instant)>> =
        futures::stream::iter((0..o.pods).map(|i| {
            let pods = pods.clone();
            async move {
                let p = bench_pod(i);
                let t = Instant::now();
                pods.create(&PostParams::default(), &p).await?;
                Ok((p.metadata.name.unwrap_or_default(), t))
            }
        }))
        .buffer_unordered(o.concurrency)
        .collect()
        .await;
    let create_seconds = start.elapsed().as_secs_f64();
    let mut sent: HashMap<String, Instant> = HashMap::new();
    for r in created {
        let (name, t) = r.context("create a pod")?;
        sent.insert(name, t);
    }
    let bound = tokio::time::timeout(Duration::from_secs(600), watcher)
        .await
        .context("pods not all bound within 600 s")??;
    if bound.len() < o.pods {
        bail!(
            "only {} of {} pods were bound (watch ended)",
            bound.len(),
            o.pods
        );
    }
    let last = bound.values().map(|(t, _)| *t).max().unwrap_or(start);
    let all_bound_seconds = (last - start).as_secs_f64();
    let mut lat: Vec<f64> = bound
        .iter()
        .filter_map(|(name, (t, _))| {
            sent.get(name)
                .map(|s| t.saturating_duration_since(*s).as_secs_f64() * 1000.0)
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    let mut per_node: HashMap<&str, usize> = HashMap::new();
    for (_, n) in bound.values() {
        *per_node.entry(n.as_str()).or_default() += 1;
    }
    let per_node_min = if per_node.len() < o.nodes {
        0
    } else {
        per_node.values().copied().min().unwrap_or(0)
    };
    Ok(Report {
        nodes: o.nodes,
        pods: o.pods,
        concurrency: o.concurrency,
        create_seconds,
        all_bound_seconds,
        pods_per_second: o.pods as f64 / all_bound_seconds.max(1e-9),
        bind_p50_ms: percentile(&lat, 0.50),
        bind_p90_ms: percentile(&lat, 0.90),
        bind_p99_ms: percentile(&lat, 0.99),
        per_node_min,
        per_node_max: per_node.values().copied().max().unwrap_or(0),
        control_rss_mib: f64::NAN,
    })
}
