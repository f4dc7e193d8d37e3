//! `capstan-control`: parses flags and wires the API server, scheduler and
//! controllers. It owns no logic of its own.
//!
//!   capstan-control init --dir DIR --server https://IP:6443 [--node N]...
//!   capstan-control [serve] --pki-dir DIR --etcd-endpoints URL,...

mod advertise;
mod args;
mod init;
mod serve;

use std::process::ExitCode;

use args::{node_ipam_config, Cli, Cmd};
use clap::Parser;
use init::init;
use serve::serve;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        // --help and --version go to stdout and succeed.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            // The first paragraph, on one line: a missing argument's name
            // is on the line after "required arguments were not provided".
            let msg = e.render().to_string();
            let first: Vec<&str> = msg
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            eprintln!(
                "capstan-control: {} (see --help)",
                first.join(" ").trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    let serve_args = match &cli.command {
        Some(Cmd::Init(_)) => None,
        Some(Cmd::Serve(a)) => Some(a.as_ref()),
        None => Some(&cli.serve),
    };
    let ipam = match serve_args.map(node_ipam_config).transpose() {
        Ok(c) => c.flatten(),
        Err(e) => {
            eprintln!("capstan-control: {e} (see --help)");
            return ExitCode::from(2);
        }
    };
    capstan_serve::logging::init();
    let result = match cli.command {
        Some(Cmd::Init(a)) => init(a),
        Some(Cmd::Serve(a)) => serve(*a, ipam),
        None => serve(cli.serve, ipam),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("capstan-control: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each said once (some errors
/// repeat their source in their own message).
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}
