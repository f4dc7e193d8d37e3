//! `capstan-lab`: makes and removes persistent labs (the local cluster of
//! `deploy/local/cluster.sh`) and runs commands inside their nodes.

use std::os::unix::process::CommandExt;
use std::process::ExitCode;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use capstan_lab::forward::{read_port_file, write_port_file, Forwarder};
use capstan_lab::health;
use capstan_lab::lab::{add_node, node_command, restart_daemon, Lab};
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
    /// Run a command inside a node (its network and mount namespaces;
    /// `lab` for the underlay, outside every node).
    Exec {
        node: String,
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
    /// Add node N+1 to the running lab (namespaces, directories, underlay
    /// link; with --containerd its containerd and the test image). Prints
    /// the new node's name.
    AddNode {
        #[arg(long)]
        containerd: bool,
    },
    /// Stop a daemon and start it again with the same data.
    Restart {
        /// etcd, containerd, agent, control or forward.
        daemon: String,
        /// Node for per-node daemons.
        node: Option<String>,
    },
    /// Start a daemon inside a node (or `lab`; or `host`: in this
    /// namespace) and record it in the lab's state so that status, restart
    /// and down know it.
    Spawn {
        node: String,
        daemon: String,
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
    /// Exit 0 if the lab is really running (every namespace there, every
    /// recorded and expected daemon alive); exit 1 naming what is dead;
    /// exit 3 if there is no such lab.
    Check {
        /// A daemon that must be running, as NAME@PLACE (e.g. etcd@lab).
        #[arg(long = "expect", value_name = "NAME@PLACE")]
        expect: Vec<health::Expected>,
        /// Daemons every node must run (e.g. containerd,agent).
        #[arg(long, value_delimiter = ',')]
        per_node: Vec<String>,
    },
    /// Listen on this namespace's LISTEN address and forward every
    /// connection to TO, dialled from inside the lab's underlay namespace
    /// (how the host reaches the lab's API server; runs until killed).
    Forward {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        #[arg(long)]
        to: SocketAddr,
        /// Write the bound port here once listening (for --listen ...:0).
        /// If the file already names a port, --listen ...:0 takes that one
        /// again, so a restarted forwarder keeps the kubeconfig valid.
        #[arg(long)]
        port_file: Option<PathBuf>,
    },
}

/// Exit code of `check` when no lab of that name exists.
const NO_LAB: u8 = 3;

fn main() -> ExitCode {
    capstan_serve::logging::init_with("warn");
    let cli = match capstan_lab::cli::parse::<Cli>("capstan-lab") {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Cli { name, command } = cli;
    if let Cmd::Check { expect, per_node } = &command {
        return check(&name, expect, per_node);
    }
    match run(&name, command) {
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

fn run(name: &str, command: Cmd) -> anyhow::Result<()> {
    match command {
        Cmd::Up {
            nodes,
            etcd,
            containerd,
        } => {
            let lab = Lab::builder()
                .persistent(name)
                .nodes(nodes)
                .etcd(etcd)
                .containerd(containerd)
                .build()
                .context("building the lab")?;
            print_status(&lab.state());
            Ok(())
        }
        Cmd::Down => {
            Lab::destroy(name)?;
            Ok(())
        }
        Cmd::Status => {
            print_status(&load(name)?);
            Ok(())
        }
        Cmd::Exec { node, command } => {
            let state = load(name)?;
            let mut cmd = match node.as_str() {
                "lab" => Netns::existing(&state.underlay_netns)?.command(&command[0])?,
                _ => node_command(state.node(&node)?, &command[0])?,
            };
            cmd.args(&command[1..]);
            // exec: the command takes over this process (stdin, tty, exit code).
            let err = cmd.exec();
            anyhow::bail!("exec {}: {err}", command[0])
        }
        Cmd::AddNode { containerd } => {
            let mut state = load(name)?;
            let (node, d) = add_node(&mut state, containerd, containerd)
                .with_context(|| format!("adding a node to lab {name}"))?;
            if let Some(mut d) = d {
                d.keep();
            }
            println!("{}", node.name);
            Ok(())
        }
        Cmd::Restart { daemon, node } => {
            let mut state = load(name)?;
            let place = match daemon.as_str() {
                "etcd" | "control" => "lab".to_string(),
                "forward" => "host".to_string(),
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
            let mut state = load(name)?;
            let ns = match node.as_str() {
                "host" => None,
                _ => Some(netns_of(&state, &node)?),
            };
            let pid = capstan_lab::lab::spawn_recorded(
                &mut state,
                &node,
                ns.as_deref(),
                &daemon,
                &command,
            )?;
            println!("{daemon} on {node} started (pid {pid})");
            Ok(())
        }
        // Answered by `check` before `run`, for its own exit codes.
        Cmd::Check { .. } => Ok(()),
        Cmd::Forward {
            listen,
            to,
            port_file,
        } => {
            let state = load(name)?;
            let ns = Netns::existing(&state.underlay_netns)?;
            let mut listen = listen;
            if listen.port() == 0 {
                if let Some(port) = port_file.as_deref().and_then(read_port_file) {
                    listen.set_port(port);
                }
            }
            let fwd = Forwarder::bind(listen, ns, to)?;
            let bound = fwd.local_addr()?;
            if let Some(path) = &port_file {
                write_port_file(path, bound.port())?;
            }
            eprintln!(
                "capstan-lab: forwarding {bound} to {to} in {}",
                state.underlay_netns
            );
            fwd.serve()?;
            Ok(())
        }
    }
}

/// `check`: its own exit codes, so cluster.sh can tell "dead" from "none".
fn check(name: &str, expect: &[health::Expected], per_node: &[String]) -> ExitCode {
    let dir = base_dir().join(name);
    if !LabState::path(&dir).exists() {
        println!("no lab named {name}");
        return ExitCode::from(NO_LAB);
    }
    let state = match LabState::load(&dir) {
        Ok(s) => s,
        Err(e) => {
            // Unreadable state is a broken lab: the caller should clean it.
            println!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let problems = health::problems(&state, expect, per_node);
    if problems.is_empty() {
        println!("lab {name} is running");
        ExitCode::SUCCESS
    } else {
        println!("{}", problems.join(", "));
        ExitCode::FAILURE
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
