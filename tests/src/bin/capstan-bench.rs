//! `capstan-bench`: Capstan's benchmarks, each measured beside its anchor
//! in one run (see the README's performance section).

use std::path::PathBuf;
use std::process::ExitCode;

use capstan_lab::bench::pod_latency;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "capstan-bench",
    version,
    about = "Capstan benchmarks (root; builds its own lab)"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Pod-to-pod latency and throughput: underlay, flannel-style reference, Capstan.
    PodLatency {
        /// Measured seconds per cell.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Rounds the cells are interleaved in.
        #[arg(long, default_value_t = 5)]
        rounds: u32,
        /// Unmeasured seconds before each measurement.
        #[arg(long, default_value_t = 0.2)]
        warmup: f64,
        /// Leave out the Capstan rows (reference and underlay only).
        #[arg(long)]
        no_capstan: bool,
        /// Write the report as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Draw latency CDFs as SVG.
        #[arg(long)]
        plot: Option<PathBuf>,
    },
    /// Scheduler throughput: pods bound per second onto simulated nodes.
    Scheduler {
        #[arg(long, default_value_t = 500)]
        nodes: usize,
        #[arg(long, default_value_t = 5000)]
        pods: usize,
        /// Concurrent clients creating pods.
        #[arg(long, default_value_t = 100)]
        clients: usize,
        /// Write the report as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// API server latency (create, get, patch, list, watch delivery) and memory.
    Api {
        /// Concurrent clients, each its own connection.
        #[arg(long, default_value_t = 100)]
        clients: usize,
        /// Pods in the namespace that is listed.
        #[arg(long, default_value_t = 1000)]
        pods: usize,
        /// Calls per client for create, get and patch.
        #[arg(long, default_value_t = 20)]
        ops: usize,
        /// Pods stored in total when the server's RSS is sampled.
        #[arg(long, default_value_t = 10_000)]
        stored: usize,
        /// After the closed-loop rounds (every client calls again as soon
        /// as answered: the server saturated), creates and patches sent at
        /// this many calls per second in all; repeat for several rates.
        #[arg(long = "rate")]
        rates: Vec<f64>,
        /// Write the report as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Pod startup: create → Running/Ready through capstan-control and two
    /// kubelets, N pods in batches and at once; agent RSS and idle CPU.
    PodStartup {
        #[arg(long, default_value_t = 100)]
        pods: usize,
        /// Pods created together in the batched round (each batch waited for).
        #[arg(long, default_value_t = 10)]
        batch: usize,
        /// Seconds the idle agents' CPU is sampled over.
        #[arg(long, default_value_t = 10)]
        idle_seconds: u64,
        /// Readiness probe period of every pod (Kubernetes' default is 10).
        #[arg(long, default_value_t = 1)]
        probe_period: u32,
        /// Write the report as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// CNI ADD/DEL time: capstan-cni against the reference bridge + host-local.
    Cni {
        /// ADD+DEL pairs per plugin, interleaved.
        #[arg(long, default_value_t = 50)]
        runs: usize,
        /// Pods added at once in the concurrent round.
        #[arg(long, default_value_t = 64)]
        concurrent: usize,
        /// capstan-cni binary to measure (default: the one built beside
        /// this tool; deploy/cni/build-static.sh builds the installed one).
        #[arg(long)]
        plugin: Option<PathBuf>,
    },
    /// Service proxy (nftables): sync time, memory, ClusterIP vs direct latency.
    Proxy {
        #[arg(long, default_value_t = 10_000)]
        services: usize,
        #[arg(long, default_value_t = 10)]
        endpoints: usize,
        /// One-service changes measured.
        #[arg(long, default_value_t = 20)]
        changes: usize,
        /// Measured seconds per latency cell.
        #[arg(long, default_value_t = 2.0)]
        duration: f64,
        #[arg(long, default_value_t = 3)]
        rounds: u32,
        /// Write the report as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = match capstan_lab::cli::parse::<Cli>("capstan-bench") {
        Ok(c) => c,
        Err(code) => return code,
    };
    capstan_serve::logging::init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("capstan-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        anyhow::bail!("must run as root (it builds network namespaces)");
    }
    match cli.command {
        Cmd::PodLatency {
            duration,
            rounds,
            warmup,
            no_capstan,
            json,
            plot,
        } => {
            if duration.is_nan() || duration <= 0.0 {
                anyhow::bail!("--duration must be positive");
            }
            let report = pod_latency::run(&pod_latency::Options {
                duration,
                rounds,
                warmup,
                capstan: !no_capstan,
                json,
                plot,
            })?;
            print!("{report}");
            Ok(())
        }
        Cmd::Scheduler {
            nodes,
            pods,
            clients,
            json,
        } => {
            let report =
                capstan_lab::bench::scheduler::run(&capstan_lab::bench::scheduler::Options {
                    nodes,
                    pods,
                    concurrency: clients,
                    json,
                })?;
            print!("{report}");
            Ok(())
        }
        Cmd::Api {
            clients,
            pods,
            ops,
            stored,
            rates,
            json,
        } => {
            let report = capstan_lab::bench::api::run(&capstan_lab::bench::api::Options {
                clients,
                pods,
                ops,
                stored,
                rates,
                json,
            })?;
            print!("{report}");
            Ok(())
        }
        Cmd::PodStartup {
            pods,
            batch,
            idle_seconds,
            probe_period,
            json,
        } => {
            let report =
                capstan_lab::bench::pod_startup::run(&capstan_lab::bench::pod_startup::Options {
                    pods,
                    batch,
                    idle_seconds,
                    probe_period,
                    json,
                })?;
            print!("{report}");
            Ok(())
        }
        Cmd::Cni {
            runs,
            concurrent,
            plugin,
        } => {
            let report = capstan_lab::bench_cni::run(&capstan_lab::bench_cni::BenchCniOpts {
                runs,
                concurrent,
                plugin,
                ..Default::default()
            })?;
            print!("{report}");
            Ok(())
        }
        Cmd::Proxy {
            services,
            endpoints,
            changes,
            duration,
            rounds,
            json,
        } => {
            let report = capstan_lab::bench::proxy::run(&capstan_lab::bench::proxy::Options {
                services,
                endpoints,
                changes,
                duration,
                rounds,
            })?;
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
            }
            print!("{report}");
            Ok(())
        }
    }
}
