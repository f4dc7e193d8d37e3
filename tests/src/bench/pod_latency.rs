//! `capstan-bench pod-latency`: pod-to-pod latency and throughput for the
//! underlay floor, the flannel-style kernel reference and Capstan, on the
//! same two lab nodes in one run, cells interleaved in rounds so machine
//! noise lands on every row alike.

use std::path::PathBuf;

use serde::Serialize;

use super::pods::{self, Endpoint, TCP_ECHO_PORT, TCP_SINK_PORT, UDP_ECHO_PORT};
use super::stats::{LatencyRun, MeanRate, Merged, Percentiles};
use crate::netns::Netns;
use crate::{cmd, Lab, LabError};

/// Per-round median spread above which the run is reported as noisy.
pub const NOISE_BOUND: f64 = 0.25;

#[derive(Clone, Debug)]
pub struct Options {
    /// Measured seconds per cell (split across the rounds).
    pub duration: f64,
    pub rounds: u32,
    pub warmup: f64,
    /// Include the Capstan rows (needs capstan-agent and capstan-cni).
    pub capstan: bool,
    pub json: Option<PathBuf>,
    pub plot: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub kernel: String,
    pub duration_s_per_cell: f64,
    pub rounds: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct RowReport {
    pub dataplane: String,
    pub path: String,
    pub tcp_rr_us: Percentiles,
    pub udp_rr_us: Percentiles,
    pub tcp_crr_per_s: f64,
    pub tcp_stream_gbit_s: f64,
    pub ratio_to_underlay_p50: f64,
    pub tcp_rr_round_spread: f64,
    #[serde(skip)]
    pub tcp_rr_quantiles_us: Vec<f64>,
    #[serde(skip)]
    pub samples: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub rows: Vec<RowReport>,
    pub noisy: bool,
}

struct Cell {
    dataplane: &'static str,
    path: &'static str,
    client_ns: String,
    target: std::net::Ipv4Addr,
    tcp_rr: Merged,
    udp_rr: Merged,
    crr: MeanRate,
    stream: MeanRate,
}

impl Cell {
    fn new(
        dataplane: &'static str,
        path: &'static str,
        client: &Endpoint,
        server: &Endpoint,
    ) -> Self {
        Cell {
            dataplane,
            path,
            client_ns: client.netns.clone(),
            target: server.ip,
            tcp_rr: Merged::default(),
            udp_rr: Merged::default(),
            crr: MeanRate::default(),
            stream: MeanRate::default(),
        }
    }
}

fn client(
    ns: &str,
    mode: &str,
    target: std::net::SocketAddr,
    secs: f64,
    warmup: f64,
) -> Result<serde_json::Value, LabError> {
    let bin = crate::bins::path("capstan-testsrv")?;
    let out = cmd::stdout(
        Netns::existing(ns)?
            .command(bin)?
            .args(["client", mode])
            .arg(format!("--target={target}"))
            .arg(format!("--duration={secs}"))
            .arg(format!("--warmup={warmup}"))
            .arg("--cpu=0"),
    )?;
    serde_json::from_str(out.trim())
        .map_err(|e| LabError::Other(format!("client {mode} printed {out:?}: {e}")))
}

fn latency(v: serde_json::Value) -> Result<LatencyRun, LabError> {
    serde_json::from_value(v).map_err(|e| LabError::Other(format!("latency summary: {e}")))
}

pub fn run(opts: &Options) -> Result<Report, LabError> {
    let lab = Lab::builder().nodes(2).etcd(opts.capstan).build()?;
    let (n1, n2) = (lab.node(0), lab.node(1));
    let under = |n: &crate::Node| Endpoint {
        netns: n.netns_name().to_string(),
        ip: n.ip(),
    };
    let mut servers = Vec::new();
    let mut cells = Vec::new();

    servers.push(pods::start_server(&n2, &under(&n2), 1)?);
    cells.push(Cell::new(
        "underlay",
        "cross-node",
        &under(&n1),
        &under(&n2),
    ));

    let reference = pods::reference(&lab)?;
    servers.push(pods::start_server(&n1, &reference.a2, 1)?);
    servers.push(pods::start_server(&n2, &reference.b1, 1)?);
    cells.push(Cell::new(
        "reference",
        "same-node",
        &reference.a1,
        &reference.a2,
    ));
    cells.push(Cell::new(
        "reference",
        "cross-node",
        &reference.a1,
        &reference.b1,
    ));

    let mut _agents = Vec::new();
    if opts.capstan {
        let (capstan, agents) = pods::capstan(&lab)?;
        _agents = agents;
        servers.push(pods::start_server(&n1, &capstan.a2, 1)?);
        servers.push(pods::start_server(&n2, &capstan.b1, 1)?);
        cells.push(Cell::new("capstan", "same-node", &capstan.a1, &capstan.a2));
        cells.push(Cell::new("capstan", "cross-node", &capstan.a1, &capstan.b1));
    }

    let rounds = opts.rounds.max(1);
    let slice = opts.duration / rounds as f64;
    for round in 0..rounds {
        tracing::info!(round, "benchmark round");
        for c in &mut cells {
            let at = |port| std::net::SocketAddr::from((c.target, port));
            c.tcp_rr.add(&latency(client(
                &c.client_ns,
                "tcp-rr",
                at(TCP_ECHO_PORT),
                slice,
                opts.warmup,
            )?)?);
            c.udp_rr.add(&latency(client(
                &c.client_ns,
                "udp-rr",
                at(UDP_ECHO_PORT),
                slice,
                opts.warmup,
            )?)?);
            let crr = client(
                &c.client_ns,
                "tcp-crr",
                at(TCP_ECHO_PORT),
                slice,
                opts.warmup,
            )?;
            c.crr.add(crr["per_s"].as_f64().unwrap_or(0.0));
            let st = client(
                &c.client_ns,
                "tcp-stream",
                at(TCP_SINK_PORT),
                slice,
                opts.warmup,
            )?;
            c.stream.add(st["gbit_s"].as_f64().unwrap_or(0.0));
        }
    }
    drop(servers);
    drop(_agents);
    drop(lab);

    let floor = cells
        .iter()
        .find(|c| c.dataplane == "underlay")
        .map(|c| c.tcp_rr.percentiles().p50)
        .unwrap_or(0.0);
    let rows: Vec<RowReport> = cells
        .iter()
        .map(|c| {
            let p = c.tcp_rr.percentiles();
            RowReport {
                dataplane: c.dataplane.into(),
                path: c.path.into(),
                ratio_to_underlay_p50: if floor > 0.0 { p.p50 / floor } else { 0.0 },
                tcp_rr_us: p,
                udp_rr_us: c.udp_rr.percentiles(),
                tcp_crr_per_s: c.crr.mean(),
                tcp_stream_gbit_s: c.stream.mean(),
                tcp_rr_round_spread: c.tcp_rr.spread(),
                tcp_rr_quantiles_us: c.tcp_rr.quantiles_us.clone(),
                samples: c.tcp_rr.count + c.udp_rr.count,
            }
        })
        .collect();
    let noisy = rounds > 1 && rows.iter().any(|r| r.tcp_rr_round_spread > NOISE_BOUND);
    let report = Report {
        machine: Machine {
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
            duration_s_per_cell: opts.duration,
            rounds,
        },
        rows,
        noisy,
    };
    if let Some(path) = &opts.json {
        let text =
            serde_json::to_vec_pretty(&report).map_err(|e| LabError::Other(e.to_string()))?;
        std::fs::write(path, text).map_err(LabError::io(format!("write {}", path.display())))?;
    }
    if let Some(path) = &opts.plot {
        let series: Vec<(String, Vec<f64>)> = report
            .rows
            .iter()
            .map(|r| {
                (
                    format!("{} {}", r.dataplane, r.path),
                    r.tcp_rr_quantiles_us.clone(),
                )
            })
            .collect();
        super::plot::cdf(path, &series)?;
    }
    Ok(report)
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "| dataplane | path | TCP RR p50 µs | p90 | p99 | p99.9 | UDP RR p50 µs | p99 | TCP CRR /s | stream Gbit/s | p50 / underlay |"
        )?;
        writeln!(f, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")?;
        for r in &self.rows {
            writeln!(
                f,
                "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {:.2} | {:.2}× |",
                r.dataplane, r.path, r.tcp_rr_us.p50, r.tcp_rr_us.p90, r.tcp_rr_us.p99, r.tcp_rr_us.p999,
                r.udp_rr_us.p50, r.udp_rr_us.p99, r.tcp_crr_per_s, r.tcp_stream_gbit_s, r.ratio_to_underlay_p50
            )?;
        }
        writeln!(
            f,
            "\n{} cpus, kernel {}, {} s per cell in {} rounds{}",
            self.machine.cpus,
            self.machine.kernel,
            self.machine.duration_s_per_cell,
            self.machine.rounds,
            if self.noisy {
                format!("; NOISY: a row's per-round TCP RR medians spread more than {:.0} %, do not trust small differences", NOISE_BOUND * 100.0)
            } else {
                String::new()
            }
        )
    }
}
