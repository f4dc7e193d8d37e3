//! Probes every feature asserts with: refused, dropped, reached from
//! everywhere, an HTTP status, node 1's nft. No test lives here.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use capstan_proxy::Place;
use libtest_mimic::Failed;

use crate::common::*;
use crate::suite::*;

pub fn addr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().expect("ip"), port)
}

pub fn expect_refused(
    r: std::io::Result<(String, IpAddr)>,
    start: Instant,
    what: &str,
) -> Result<(), Failed> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            if start.elapsed() > Duration::from_millis(500) {
                return Err(
                    format!("{what}: refused, but only after {:?}", start.elapsed()).into(),
                );
            }
            Ok(())
        }
        other => Err(format!("{what}: want connection refused, got {other:?}").into()),
    }
}

pub fn http_status(place: &Place, to: SocketAddr) -> Result<u16, Failed> {
    let line = place.run_in(move || {
        use std::io::{BufRead, Write};
        let mut c = std::net::TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
        c.set_read_timeout(Some(Duration::from_secs(2)))?;
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")?;
        let mut line = String::new();
        std::io::BufReader::new(c).read_line(&mut line)?;
        Ok(line)
    })?;
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {line:?}").into())
}

pub fn nft0(s: &Suite, args: &[&str]) -> Result<String, Failed> {
    Ok(run(s
        .lab
        .node(0)
        .command("nft")
        .map_err(|e| e.to_string())?
        .args(args))?)
}

/// Requests from `place` until every pod in `want` answered (at most 60
/// tries); fails if any other pod answers or `check` rejects a client
/// address the server saw.
pub fn reach_all(
    place: &Place,
    to: SocketAddr,
    want: &[&str],
    check: impl Fn(IpAddr) -> Result<(), String>,
) -> Result<(), Failed> {
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..60 {
        let (pod, from) =
            tcp_request(place, to, Duration::from_secs(2)).map_err(|e| format!("{to}: {e}"))?;
        if !want.contains(&pod.as_str()) {
            return Err(format!("{to}: answer from {pod}, want one of {want:?}").into());
        }
        check(from).map_err(|e| format!("{to} answered by {pod}: {e}"))?;
        seen.insert(pod);
        if seen.len() == want.len() {
            return Ok(());
        }
    }
    Err(format!("{to}: reached only {seen:?}, want {want:?}").into())
}

/// A connection attempt that must not get through (the proxy drops it):
/// no answer, and not a reset either.
pub fn expect_dropped(place: &Place, to: SocketAddr, what: &str) -> Result<(), Failed> {
    match tcp_request(place, to, Duration::from_millis(500)) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) =>
        {
            Ok(())
        }
        other => Err(format!("{what}: want the packet dropped (timeout), got {other:?}").into()),
    }
}
