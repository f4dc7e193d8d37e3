//! `capstan-lab`: makes and removes persistent labs (the local cluster of
//! `deploy/local/cluster.sh`) and runs commands inside their nodes.

use std::os::unix::process::CommandExt;
use std::process::ExitCode;

use anyhow::Context;
use capstan_lab::lab::{restart_daemon, Lab};
use capstan_lab::state::{base_dir, LabState};
use capstan_lab::Netns;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "capstan-lab",
    version,
    about = "Capstan lab: clusters in network namespaces"
)]
struct Cli {
    /// Name of the lab (namespaces are named `<name>-node-1`, ...).
    #[arg(long, default_value = "capstan", global = true)]
    name: String,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Make the lab and leave it running.
    Up {
        #[arg(long, default_value_t = 2)]
        nodes: usize,
        /// Start etcd in the underlay namespace.
        #[arg(long)]
        etcd: bool,
        /// Start a containerd per node and import the test image.
        #[arg(long)]
        containerd: bool,
    },
    /// Remove the lab and everything it made.
    Down,
    /// Print the lab's nodes and daemons.
    Status,
    /// Run a command inside a node's network namespace (`lab` for the
    /// underlay, outside every node).
    Exec {
        node: String,
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
    /// Stop a daemon and start it again with the same data.
    Restart {
        /// etcd, containerd, agent or control.
        daemon: String,
        /// Node for per-node daemons.
        node: Option<String>,
    },
    /// Start a daemon inside a node (or `lab`) and record it in the lab's
    /// state so that status, restart and down know it.
    Spawn {
        node: String,
        daemon: String,
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = match capstan_lab::cli::parse::<Cli>("capstan-lab") {
        Ok(c) => c,
        Err(code) => return code,
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("capstan-lab: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(name: &str) -> anyhow::Result<LabState> {
    LabState::load(&base_dir().join(name))
        .with_context(|| format!("no lab named {name} is up (start it with `up`)"))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Cmd::Up {
            nodes,
            etcd,
            containerd,
        } => {
            let lab = Lab::builder()
                .persistent(&cli.name)
                .nodes(nodes)
                .etcd(etcd)
                .containerd(containerd)
                .build()
                .context("building the lab")?;
            print_status(&lab.state());
            Ok(())
        }
        Cmd::Down => {
            Lab::destroy(&cli.name)?;
            Ok(())
        }
        Cmd::Status => {
            print_status(&load(&cli.name)?);
            Ok(())
        }
        Cmd::Exec { node, command } => {
            let state = load(&cli.name)?;
            let ns = netns_of(&state, &node)?;
            let mut cmd = Netns::existing(&ns)?.command(&command[0])?;
            cmd.args(&command[1..]);
            // exec: the command takes over this process (stdin, tty, exit code).
            let err = cmd.exec();
            anyhow::bail!("exec {}: {err}", command[0])
        }
        Cmd::Restart { daemon, node } => {
            let mut state = load(&cli.name)?;
            let place = match daemon.as_str() {
                "etcd" | "control" => "lab".to_string(),
                _ => node.with_context(|| format!("restart {daemon} needs a node name"))?,
            };
            let pid = restart_daemon(&mut state, &place, &daemon)?;
            println!("{daemon} on {place} restarted (pid {pid})");
            Ok(())
        }
        Cmd::Spawn {
            node,
            daemon,
            command,
        } => {
            let mut state = load(&cli.name)?;
            let ns = netns_of(&state, &node)?;
            let pid = capstan_lab::lab::spawn_recorded(&mut state, &node, &ns, &daemon, &command)?;
            println!("{daemon} on {node} started (pid {pid})");
            Ok(())
        }
    }
}

fn netns_of(state: &LabState, node: &str) -> anyhow::Result<String> {
    if node == "lab" {
        return Ok(state.underlay_netns.clone());
    }
    Ok(state.node(node)?.netns.clone())
}

fn print_status(state: &LabState) {
    println!("lab {} ({})", state.prefix, state.dir.display());
    println!(
        "  lab (underlay) netns {} {}",
        state.underlay_netns, state.underlay_ip
    );
    for n in &state.nodes {
        println!("  {} netns {} {}", n.name, n.netns, n.ip);
    }
    for d in &state.daemons {
        let alive = capstan_lab::daemon::process_alive(d.pid);
        println!(
            "  {:<10} on {:<8} pid {:<7} {}  log {}",
            d.spec.name,
            d.place,
            d.pid,
            if alive { "running" } else { "STOPPED" },
            d.spec.log.display()
        );
    }
}
