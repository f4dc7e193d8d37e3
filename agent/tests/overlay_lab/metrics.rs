//! The agents' metrics endpoint shows the overlay's metrics.

use std::time::Duration;

use libtest_mimic::Failed;

use crate::common::*;
use crate::suite::*;

pub fn metrics_endpoint(s: &Suite) -> Result<(), Failed> {
    // Runs after the etcd outage: node 0 has seen store errors and renewals.
    let addr = std::net::SocketAddr::from((s.lab.node(0).ip(), METRICS_PORT));
    let text: Result<String, String> = s
        .lab
        .node(0)
        .netns()
        .run_in(move || {
            use std::io::{Read, Write};
            let mut c = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))
                .map_err(|e| format!("connect {addr}: {e}"))?;
            c.set_read_timeout(Some(Duration::from_secs(3))).ok();
            c.write_all(b"GET /metrics HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n")
                .map_err(|e| e.to_string())?;
            let mut out = String::new();
            c.read_to_string(&mut out).map_err(|e| e.to_string())?;
            Ok(out)
        })
        .map_err(|e| e.to_string())?;
    let text = text?;
    let value = |name: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    check(text.starts_with("HTTP/1.1 200"), format!("answer: {text}"))?;
    check(
        value("capstan_overlay_peers") == Some((NODES - 1) as f64),
        format!("peers programmed: {text}"),
    )?;
    for (name, min) in [
        ("capstan_overlay_reconcile_runs_total", 1.0),
        ("capstan_overlay_reconcile_duration_seconds_count", 1.0),
        ("capstan_overlay_subnet_store_errors_total", 1.0),
        ("capstan_overlay_lease_renewals_total", 1.0),
        ("capstan_overlay_reconcile_errors_total", 0.0),
    ] {
        check(
            value(name).is_some_and(|v| v >= min),
            format!("{name} >= {min} in {text}"),
        )?;
    }
    Ok(())
}
