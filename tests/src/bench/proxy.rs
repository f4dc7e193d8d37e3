//! `capstan-bench proxy`: the nftables service proxy's costs. Sync time
//! (full, and a one-service change) with N services × M endpoints, the
//! proxy's memory for that state, and connect+request latency through a
//! ClusterIP against the direct pod IP in the same run, at a few services
//! and at N services. Everything runs in a one-node lab.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use capstan_proxy::model::IpFamily;
use capstan_proxy::{Place, Proxy, ProxyConfig, ProxyEvent};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint as SliceEndpoint, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::pods::{self, Endpoint, TCP_ECHO_PORT};
use crate::netns::Netns;
use crate::veth::Veth;
use crate::{cmd, Lab, LabError};

pub struct Options {
    pub services: usize,
    pub endpoints: usize,
    /// One-service changes measured.
    pub changes: usize,
    /// Seconds per latency cell, and rounds the cells interleave in.
    pub duration: f64,
    pub rounds: u32,
}

#[derive(Debug, serde::Serialize)]
pub struct Report {
    pub services: usize,
    pub endpoints_per_service: usize,
    pub full_sync_ms: Vec<f64>,
    pub one_service_change_ms: Summary,
    /// Growth of RSS while holding the state, after the first full sync.
    pub proxy_rss_mib: f64,
    /// Growth of peak RSS over the same span (includes the transient
    /// rendering and transaction text of a full sync).
    pub proxy_peak_rss_mib: f64,
    pub latency: Vec<LatencyRow>,
}

#[derive(Debug, serde::Serialize)]
pub struct Summary {
    pub p50: f64,
    pub p90: f64,
    pub max: f64,
}

#[derive(Debug, serde::Serialize)]
pub struct LatencyRow {
    pub services: usize,
    pub direct_us: f64,
    pub cluster_ip_us: f64,
    pub ratio: f64,
}

fn summary(mut v: Vec<f64>) -> Summary {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| {
        v.get(((v.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    Summary {
        p50: at(0.5),
        p90: at(0.9),
        max: v.last().copied().unwrap_or(f64::NAN),
    }
}

const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 247, 0, 3);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 247, 0, 2);

fn cluster_ip(i: usize) -> Ipv4Addr {
    // 10.96.0.0/12 holds a million addresses; service 0 is the real one.
    let n = 10 + i as u32;
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + n)
}

fn service(i: usize) -> Service {
    Service {
        metadata: ObjectMeta {
            namespace: Some("bench".into()),
            name: Some(format!("svc-{i}")),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some(cluster_ip(i).to_string()),
            ports: Some(vec![ServicePort {
                name: Some("p".into()),
                port: 80,
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

/// Service i's slice: service 0 points at the real server; the others at
/// made-up pod addresses (`generation` shifts them, to make a change).
fn slice(i: usize, endpoints: usize, node: &str, generation: u32) -> EndpointSlice {
    let ips: Vec<String> = if i == 0 {
        vec![SERVER_IP.to_string()]
    } else {
        (0..endpoints)
            .map(|e| {
                let n = (i * endpoints + e) as u32 + generation * 7919;
                Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 200, 0, 0)) + n).to_string()
            })
            .collect()
    };
    EndpointSlice {
        metadata: ObjectMeta {
            namespace: Some("bench".into()),
            name: Some(format!("svc-{i}-1")),
            labels: Some([("kubernetes.io/service-name".to_string(), format!("svc-{i}"))].into()),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: ips
            .into_iter()
            .map(|ip| SliceEndpoint {
                addresses: vec![ip],
                node_name: Some(node.to_string()),
                ..Default::default()
            })
            .collect(),
        ports: Some(vec![EndpointPort {
            name: Some("p".into()),
            port: Some(i32::from(TCP_ECHO_PORT)),
            ..Default::default()
        }]),
    }
}

fn rss_kib() -> f64 {
    status_kib("VmRSS:")
}

/// The process's peak RSS so far.
fn hwm_kib() -> f64 {
    status_kib("VmHWM:")
}

fn status_kib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(f64::NAN)
}

fn ip(ns: &str, args: &[&str]) -> Result<(), LabError> {
    cmd::run(Command::new("ip").args(["-n", ns]).args(args)).map(|_| ())
}

fn pod(lab: &Lab, name: &str, addr: Ipv4Addr) -> Result<Endpoint, LabError> {
    let netns = format!("{}-px-{name}", lab.prefix());
    Netns::create(&netns)?.keep();
    let node = lab.node(0);
    let ns = node.netns_name();
    Veth::new(ns, &format!("vpx{name}"), &netns)
        .bridge("cbr0")
        .addr(format!("{addr}/24"))
        .gateway(Ipv4Addr::new(10, 247, 0, 1))
        .create()?;
    Ok(Endpoint { netns, ip: addr })
}

/// Mean connect+request+close time in µs from `client` to `target`.
fn crr_us(client: &Endpoint, target: SocketAddr, secs: f64) -> Result<f64, LabError> {
    let bin = crate::bins::path("capstan-testsrv")?;
    let out = cmd::stdout(
        Netns::existing(&client.netns)?
            .command(bin)?
            .args(["client", "tcp-crr"])
            .arg(format!("--target={target}"))
            .arg(format!("--duration={secs}"))
            .arg("--warmup=0.2")
            .arg("--cpu=0"),
    )?;
    let v: serde_json::Value = serde_json::from_str(out.trim())
        .map_err(|e| LabError::Other(format!("tcp-crr printed {out:?}: {e}")))?;
    let per_s = v["per_s"].as_f64().unwrap_or(0.0);
    if per_s <= 0.0 {
        return Err(LabError::Other(format!(
            "tcp-crr made no connection: {out}"
        )));
    }
    Ok(1e6 / per_s)
}

fn sync(proxy: &mut Proxy) -> Result<f64, LabError> {
    let r = proxy
        .sync()
        .map_err(|e| LabError::Other(format!("proxy sync: {e}")))?
        .ok_or_else(|| LabError::Other("proxy had nothing to sync".into()))?;
    tracing::info!(
        full = r.full,
        total_ms = r.elapsed.as_secs_f64() * 1e3,
        nft_ms = r.nft_elapsed.as_secs_f64() * 1e3,
        commands = r.commands,
        "sync measured"
    );
    Ok(r.elapsed.as_secs_f64() * 1e3)
}

pub fn run(opts: &Options) -> Result<Report, LabError> {
    if opts.services == 0 || opts.endpoints == 0 {
        return Err(LabError::Other(
            "--services and --endpoints must be positive".into(),
        ));
    }
    let lab = Lab::builder()
        .nodes(1)
        .etcd(false)
        .containerd(false)
        .image(false)
        .build()?;
    let node = lab.node(0);
    let ns = node.netns_name().to_string();
    ip(&ns, &["link", "add", "cbr0", "type", "bridge"])?;
    ip(&ns, &["addr", "add", "10.247.0.1/24", "dev", "cbr0"])?;
    ip(&ns, &["link", "set", "cbr0", "up"])?;
    cmd::run(
        Netns::existing(&ns)?
            .command("sysctl")?
            .args(["-qw", "net.ipv4.ip_forward=1"]),
    )?;
    let client = pod(&lab, "c", CLIENT_IP)?;
    let server = pod(&lab, "s", SERVER_IP)?;
    let _srv = pods::start_server(&node, &server, 1)?;

    // "5" resets the peak RSS (VmHWM) to the current RSS, so the peak
    // below is the proxy's, not the lab setup's.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before = rss_kib();
    let mut proxy = Proxy::new(ProxyConfig {
        node_name: node.name().to_string(),
        families: vec![(IpFamily::V4, Some((IpAddr::from([10, 247, 0, 0]), 16)))],
        place: Place::netns(format!("/run/netns/{ns}")),
        full_resync_interval: Duration::from_secs(3600),
    });
    let few = 10.min(opts.services);
    let feed = |proxy: &mut Proxy, range: std::ops::Range<usize>| {
        for i in range {
            proxy.handle(ProxyEvent::ServiceApplied(service(i)));
            proxy.handle(ProxyEvent::SliceApplied(slice(
                i,
                opts.endpoints,
                node.name(),
                0,
            )));
        }
    };
    feed(&mut proxy, 0..few);
    proxy.handle(ProxyEvent::InitDone);
    sync(&mut proxy)?;
    let direct = SocketAddr::from((SERVER_IP, TCP_ECHO_PORT));
    let mut latency = Vec::new();
    let measure = |services: usize| -> Result<LatencyRow, LabError> {
        let (mut d, mut c) = (0.0, 0.0);
        for _ in 0..opts.rounds {
            d += crr_us(&client, direct, opts.duration)?;
            c += crr_us(
                &client,
                SocketAddr::from((cluster_ip(0), 80)),
                opts.duration,
            )?;
        }
        let n = f64::from(opts.rounds.max(1));
        Ok(LatencyRow {
            services,
            direct_us: d / n,
            cluster_ip_us: c / n,
            ratio: c / d,
        })
    };
    latency.push(measure(few)?);

    feed(&mut proxy, few..opts.services);
    proxy.force_full();
    let mut full = vec![sync(&mut proxy)?];
    let rss_after = rss_kib();
    let hwm_after = hwm_kib();
    for _ in 0..2 {
        proxy.force_full();
        full.push(sync(&mut proxy)?);
    }
    let mut changes = Vec::new();
    for k in 0..opts.changes {
        let i = 1 + (k * 7907) % (opts.services - 1).max(1);
        proxy.handle(ProxyEvent::SliceApplied(slice(
            i,
            opts.endpoints,
            node.name(),
            k as u32 + 1,
        )));
        changes.push(sync(&mut proxy)?);
    }
    latency.push(measure(opts.services)?);
    Ok(Report {
        services: opts.services,
        endpoints_per_service: opts.endpoints,
        full_sync_ms: full,
        one_service_change_ms: summary(changes),
        proxy_rss_mib: (rss_after - rss_before) / 1024.0,
        proxy_peak_rss_mib: (hwm_after - rss_before) / 1024.0,
        latency,
    })
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "proxy (nftables), {} services x {} endpoints",
            self.services, self.endpoints_per_service
        )?;
        let full: Vec<String> = self
            .full_sync_ms
            .iter()
            .map(|v| format!("{v:.0}"))
            .collect();
        writeln!(f, "| what | value |\n|---|---:|")?;
        writeln!(f, "| full sync ms (runs) | {} |", full.join(", "))?;
        let c = &self.one_service_change_ms;
        writeln!(
            f,
            "| one-service change ms p50 / p90 / max | {:.1} / {:.1} / {:.1} |",
            c.p50, c.p90, c.max
        )?;
        writeln!(
            f,
            "| proxy state RSS MiB (peak during the full sync) | {:.1} ({:.1}) |",
            self.proxy_rss_mib, self.proxy_peak_rss_mib
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "| services | direct µs | ClusterIP µs | ratio |\n|---:|---:|---:|---:|"
        )?;
        for r in &self.latency {
            writeln!(
                f,
                "| {} | {:.1} | {:.1} | {:.3} |",
                r.services, r.direct_us, r.cluster_ip_us, r.ratio
            )?;
        }
        Ok(())
    }
}
