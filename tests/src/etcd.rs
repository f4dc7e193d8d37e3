//! A real etcd (Debian etcd-server) for a lab, in the underlay namespace on
//! the underlay bridge's address, so every node reaches it like a real
//! cluster's etcd and the host's ports are never used.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use crate::daemon::{Daemon, DaemonSpec};
use crate::netns::Netns;
use crate::LabError;

pub const CLIENT_PORT: u16 = 2379;
const PEER_PORT: u16 = 2380;

pub fn spec(netns: &str, ip: Ipv4Addr, dir: &Path) -> Result<DaemonSpec, LabError> {
    let program = crate::privileged::which("etcd")
        .ok_or_else(|| LabError::Other("etcd not found: apt-get install etcd-server".into()))?;
    let client = format!("http://{ip}:{CLIENT_PORT}");
    let peer = format!("http://127.0.0.1:{PEER_PORT}");
    Ok(DaemonSpec {
        name: "etcd".into(),
        program,
        args: vec![
            "--name=lab".into(),
            format!("--data-dir={}", dir.join("etcd").display()),
            format!("--listen-client-urls={client},http://127.0.0.1:{CLIENT_PORT}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster=lab={peer}"),
            "--log-level=warn".into(),
            "--logger=zap".into(),
        ],
        env: vec![],
        netns: Some(netns.to_string()),
        mntns: None,
        log: dir.join("logs/etcd.log"),
    })
}

/// Starts etcd and returns once `/health` says so.
pub fn start(spec: DaemonSpec, ip: Ipv4Addr) -> Result<Daemon, LabError> {
    let netns = spec.netns.clone().unwrap_or_default();
    let mut d = Daemon::start(spec)?;
    let ns = Netns::existing(&netns)?;
    d.wait_ready(Duration::from_secs(30), || {
        ns.run_in(move || healthy(ip)).unwrap_or(false)
    })?;
    Ok(d)
}

/// One GET /health; true when etcd answers `"health":"true"`.
fn healthy(ip: Ipv4Addr) -> bool {
    let addr = SocketAddr::from((ip, CLIENT_PORT));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /health HTTP/1.0\r\nHost: etcd\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.contains("\"health\":\"true\"")
}
