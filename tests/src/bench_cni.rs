//! `capstan-bench cni`: ADD then DEL into fresh network namespaces, capstan
//! against the reference `bridge` + `host-local` pair with an equivalent
//! config, interleaved in one run; then N concurrent ADDs (distinct
//! addresses required) and DELs. Each plugin gets its own private "node"
//! netns; nothing is created in the host namespace.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::netns::Netns;

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchCniOpts {
    /// ADD+DEL pairs per plugin (interleaved).
    pub runs: usize,
    /// Pods in the concurrent round.
    pub concurrent: usize,
    /// capstan-cni binary; default: found next to the caller (`bins::path`).
    pub plugin: Option<PathBuf>,
    /// Where `bridge` and `host-local` live.
    pub reference_dir: PathBuf,
}

impl Default for BenchCniOpts {
    fn default() -> Self {
        BenchCniOpts {
            runs: 50,
            concurrent: 64,
            plugin: None,
            reference_dir: PathBuf::from("/usr/lib/cni"),
        }
    }
}

/// Median and p99 of one series.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    pub n: usize,
    pub median: Duration,
    pub p99: Duration,
}

impl Stats {
    fn of(mut samples: Vec<Duration>) -> Stats {
        samples.sort();
        let n = samples.len();
        let at = |q: f64| samples[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
        Stats {
            n,
            median: at(0.5),
            p99: at(0.99),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Row {
    pub command: &'static str,
    pub capstan: Stats,
    pub reference: Stats,
}

#[derive(Clone, Debug)]
pub struct ConcurrentRound {
    pub pods: usize,
    pub distinct_addresses: usize,
    pub capstan_add_wall: Duration,
    pub capstan_del_wall: Duration,
    pub reference_add_wall: Duration,
    pub reference_del_wall: Duration,
}

#[derive(Clone, Debug)]
pub struct BenchCniReport {
    pub rows: Vec<Row>,
    pub concurrent: ConcurrentRound,
    /// `busybox true` (static glibc, does nothing) started the same way:
    /// the floor under any glibc-linked plugin's process start here.
    pub exec_floor: Option<Stats>,
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

impl fmt::Display for BenchCniReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "| command | capstan median | capstan p99 | reference median | reference p99 | median ratio (capstan/ref) | runs |")?;
        writeln!(f, "|---|---|---|---|---|---|---|")?;
        for r in &self.rows {
            writeln!(
                f,
                "| {} | {} | {} | {} | {} | {:.2} | {} |",
                r.command,
                ms(r.capstan.median),
                ms(r.capstan.p99),
                ms(r.reference.median),
                ms(r.reference.p99),
                r.capstan.median.as_secs_f64() / r.reference.median.as_secs_f64(),
                r.capstan.n,
            )?;
        }
        let c = &self.concurrent;
        writeln!(f)?;
        writeln!(f, "| {} concurrent pods | capstan | reference |", c.pods)?;
        writeln!(f, "|---|---|---|")?;
        writeln!(
            f,
            "| all ADDs done (wall) | {} | {} |",
            ms(c.capstan_add_wall),
            ms(c.reference_add_wall)
        )?;
        writeln!(
            f,
            "| all DELs done (wall) | {} | {} |",
            ms(c.capstan_del_wall),
            ms(c.reference_del_wall)
        )?;
        writeln!(
            f,
            "| distinct addresses (capstan) | {} of {} | |",
            c.distinct_addresses, c.pods
        )?;
        if let Some(floor) = &self.exec_floor {
            writeln!(
                f,
                "\nexec floor (`{FLOOR_PROGRAM} true`, static glibc, started like a plugin): median {}, p99 {}",
                ms(floor.median),
                ms(floor.p99)
            )?;
        }
        Ok(())
    }
}

const FLOOR_PROGRAM: &str = "/bin/busybox";

/// Starts a static glibc program that does nothing, exactly as a plugin
/// is started (fork, setns into the node, exec, pipes): what any such
/// plugin pays before its own first instruction.
fn exec_floor(node: &Netns) -> anyhow::Result<Duration> {
    let mut cmd = node.command(FLOOR_PROGRAM)?;
    cmd.arg("true")
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let out = cmd
        .spawn()
        .with_context(|| format!("spawn {FLOOR_PROGRAM}"))?
        .wait_with_output()?;
    let took = start.elapsed();
    if !out.status.success() {
        bail!("{FLOOR_PROGRAM} true failed");
    }
    Ok(took)
}

/// One plugin under test: its binary, its config and its private node.
struct Subject {
    program: PathBuf,
    conf: Value,
    node: Netns,
    cni_path: PathBuf,
    data_dir: PathBuf,
}

impl Subject {
    fn call(&self, command: &str, id: &str, netns: &Path) -> anyhow::Result<(Duration, Value)> {
        let mut cmd = self.node.command(&self.program)?;
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", &self.cni_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let input = self.conf.to_string();
        let start = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawn {}", self.program.display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A plugin may answer (VERSION) without reading its stdin.
            match stdin.write_all(input.as_bytes()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
                _ => {}
            }
        }
        let out = child.wait_with_output()?;
        let took = start.elapsed();
        if !out.status.success() {
            bail!(
                "{} {command} failed: {} {}",
                self.program.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        Ok((took, v))
    }
}

impl Drop for Subject {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{:x}{:x}", std::process::id() & 0xffff, nanos & 0xfffff)
}

pub fn run(opts: &BenchCniOpts) -> anyhow::Result<BenchCniReport> {
    let tag = unique();
    let prefix = format!("bcni-{tag}-");
    let plugin = match &opts.plugin {
        Some(p) => p.clone(),
        None => crate::bins::path("capstan-cni")?,
    };
    let tmp = std::env::temp_dir();
    let capstan = Subject {
        program: plugin,
        conf: json!({
            "cniVersion": "1.0.0", "name": "bench-capstan", "type": "capstan",
            "bridge": "capbench0", "subnet": "10.246.0.1/16", "mtu": 1450,
            "dataDir": tmp.join(format!("{prefix}capstan")),
        }),
        node: Netns::create(&format!("{prefix}cap"))?,
        cni_path: opts.reference_dir.clone(),
        data_dir: tmp.join(format!("{prefix}capstan")),
    };
    let reference = Subject {
        program: opts.reference_dir.join("bridge"),
        conf: json!({
            "cniVersion": "1.0.0", "name": "bench-reference", "type": "bridge",
            "bridge": "refbench0", "isGateway": true, "ipMasq": false, "mtu": 1450,
            "ipam": {
                "type": "host-local", "subnet": "10.246.0.0/16", "gateway": "10.246.0.1",
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": tmp.join(format!("{prefix}reference")),
            },
        }),
        node: Netns::create(&format!("{prefix}ref"))?,
        cni_path: opts.reference_dir.clone(),
        data_dir: tmp.join(format!("{prefix}reference")),
    };

    // Sequential, interleaved: the order alternates so neither plugin
    // always runs on a warmer cache.
    // [subject][add, del, version]; VERSION does no work, so it shows
    // what starting the plugin process alone costs.
    let mut samples: [[Vec<Duration>; 3]; 2] = Default::default();
    let floor_available = Path::new(FLOOR_PROGRAM).exists();
    let mut floor = Vec::new();
    for i in 0..opts.runs {
        if floor_available {
            floor.push(exec_floor(&capstan.node)?);
        }
        let order: [usize; 2] = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        for s in order {
            let subject = if s == 0 { &capstan } else { &reference };
            let pod = Netns::create(&format!("{prefix}p{s}-{i}"))?;
            let id = format!("bench-{s}-{i}");
            let (add, _) = subject.call("ADD", &id, &pod.path())?;
            let (del, _) = subject.call("DEL", &id, &pod.path())?;
            let (version, _) = subject.call("VERSION", &id, &pod.path())?;
            samples[s][0].push(add);
            samples[s][1].push(del);
            samples[s][2].push(version);
        }
    }
    let [cap, refr] = samples;
    let [cap_add, cap_del, cap_version] = cap;
    let [ref_add, ref_del, ref_version] = refr;
    let rows = vec![
        Row {
            command: "VERSION (process start only)",
            capstan: Stats::of(cap_version),
            reference: Stats::of(ref_version),
        },
        Row {
            command: "ADD",
            capstan: Stats::of(cap_add),
            reference: Stats::of(ref_add),
        },
        Row {
            command: "DEL",
            capstan: Stats::of(cap_del),
            reference: Stats::of(ref_del),
        },
    ];

    let (cap_add_wall, cap_del_wall, distinct) =
        concurrent(&capstan, &prefix, "c", opts.concurrent)?;
    let (ref_add_wall, ref_del_wall, _) = concurrent(&reference, &prefix, "r", opts.concurrent)?;
    if distinct != opts.concurrent {
        bail!(
            "capstan handed out {distinct} distinct addresses to {} pods",
            opts.concurrent
        );
    }
    let leftover = std::fs::read_dir(&capstan.data_dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                // Reservation records are `<ip>@<owner hash>`.
                .filter(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let ip = name.split('@').next().unwrap_or_default();
                    ip.parse::<std::net::IpAddr>().is_ok()
                })
                .count()
        })
        .unwrap_or(0);
    if leftover != 0 {
        bail!("capstan left {leftover} reservations after the concurrent DELs");
    }
    Ok(BenchCniReport {
        exec_floor: (!floor.is_empty()).then(|| Stats::of(floor)),
        rows,
        concurrent: ConcurrentRound {
            pods: opts.concurrent,
            distinct_addresses: distinct,
            capstan_add_wall: cap_add_wall,
            capstan_del_wall: cap_del_wall,
            reference_add_wall: ref_add_wall,
            reference_del_wall: ref_del_wall,
        },
    })
}

/// `n` ADDs at once, then `n` DELs at once; wall times and how many
/// distinct addresses the ADDs returned.
fn concurrent(
    subject: &Subject,
    prefix: &str,
    tag: &str,
    n: usize,
) -> anyhow::Result<(Duration, Duration, usize)> {
    let pods = (0..n)
        .map(|i| Netns::create(&format!("{prefix}{tag}{i}")))
        .collect::<Result<Vec<_>, _>>()?;
    let fan_out = |command: &str| -> anyhow::Result<(Duration, Vec<Value>)> {
        let start = Instant::now();
        let results = std::thread::scope(|scope| {
            let handles: Vec<_> = pods
                .iter()
                .enumerate()
                .map(|(i, pod)| {
                    let id = format!("conc-{tag}-{i}");
                    scope.spawn(move || subject.call(command, &id, &pod.path()).map(|(_, v)| v))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .map_err(|_| anyhow::anyhow!("worker thread panicked"))?
                })
                .collect::<anyhow::Result<Vec<_>>>()
        })?;
        Ok((start.elapsed(), results))
    };
    let (add_wall, results) = fan_out("ADD")?;
    let distinct: std::collections::HashSet<String> = results
        .iter()
        .filter_map(|r| r["ips"][0]["address"].as_str().map(str::to_string))
        .collect();
    let (del_wall, _) = fan_out("DEL")?;
    Ok((add_wall, del_wall, distinct.len()))
}
