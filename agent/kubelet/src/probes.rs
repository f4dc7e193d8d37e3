//! Liveness, readiness and startup probes: the threshold logic (pure,
//! `Tracker`) and one prober task per running container that reports
//! changes of a probe's result, and every failed run (kubelet records an
//! `Unhealthy` Event per failure), to its pod worker. Never restarts
//! anything itself: the worker decides.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::runtime::container_runtime::ContainerRuntime;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Startup,
    Liveness,
    Readiness,
}

#[derive(Clone, Debug)]
pub struct Event {
    pub container: String,
    pub attempt: u32,
    pub kind: Kind,
    /// The probe's result (after thresholds), or of this run when `changed`
    /// is false: then only a failed run is reported.
    pub ok: bool,
    /// The result crossed a threshold: the worker acts on it.
    pub changed: bool,
    /// Why this run failed (empty when it passed).
    pub message: String,
}

/// Consecutive-result thresholds of one probe.
#[derive(Clone, Debug)]
pub struct Tracker {
    success_threshold: u32,
    failure_threshold: u32,
    successes: u32,
    failures: u32,
    result: Option<bool>,
}

impl Tracker {
    pub fn new(p: &Probe) -> Self {
        Self {
            success_threshold: p.success_threshold.unwrap_or(1).max(1) as u32,
            failure_threshold: p.failure_threshold.unwrap_or(3).max(1) as u32,
            successes: 0,
            failures: 0,
            result: None,
        }
    }

    /// Records one probe run; returns the new result when it changed.
    pub fn record(&mut self, ok: bool) -> Option<bool> {
        if ok {
            self.successes += 1;
            self.failures = 0;
        } else {
            self.failures += 1;
            self.successes = 0;
        }
        let new = if self.successes >= self.success_threshold {
            Some(true)
        } else if self.failures >= self.failure_threshold {
            Some(false)
        } else {
            None
        };
        match new {
            Some(n) if self.result != Some(n) => {
                self.result = Some(n);
                Some(n)
            }
            _ => None,
        }
    }
}

pub fn secs(v: Option<i32>, default: u64) -> Duration {
    Duration::from_secs(v.map(|v| v.max(0) as u64).unwrap_or(default))
}

fn port(p: &IntOrString, c: &Container) -> Option<u16> {
    match p {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|cp| cp.name.as_deref() == Some(name.as_str()))
            .and_then(|cp| u16::try_from(cp.container_port).ok())
            .or_else(|| name.parse().ok()),
    }
}

/// HTTP GET: a 2xx/3xx status within the timeout is a success.
pub async fn http_get(
    host: IpAddr,
    port: u16,
    path: &str,
    timeout: Duration,
) -> Result<(), String> {
    let run = async {
        let mut s = TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("connect {host}:{port}: {e}"))?;
        let path = if path.is_empty() { "/" } else { path };
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 256];
        let mut n = 0;
        while n < 12 {
            let r = s.read(&mut buf[n..]).await.map_err(|e| e.to_string())?;
            if r == 0 {
                break;
            }
            n += r;
        }
        let line = String::from_utf8_lossy(&buf[..n]);
        let code: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("bad HTTP answer {line:?}"))?;
        if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("HTTP probe failed with statuscode: {code}"))
        }
    };
    tokio::time::timeout(timeout, run)
        .await
        .unwrap_or_else(|_| Err(format!("timeout after {timeout:?}")))
}

pub async fn tcp(host: IpAddr, port: u16, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("dial tcp {host}:{port}: {e}")),
        Err(_) => Err(format!("dial tcp {host}:{port}: timeout")),
    }
}

/// Runs one probe once against a container.
pub async fn run_once<R: ContainerRuntime>(
    p: &Probe,
    c: &Container,
    pod_ip: IpAddr,
    container_id: &str,
    runtime: &R,
) -> Result<(), String> {
    let timeout = secs(p.timeout_seconds, 1).max(Duration::from_millis(100));
    if let Some(h) = &p.http_get {
        let host = h
            .host
            .as_deref()
            .and_then(|h| h.parse().ok())
            .unwrap_or(pod_ip);
        let port = port(&h.port, c).ok_or("bad port")?;
        return http_get(host, port, h.path.as_deref().unwrap_or("/"), timeout).await;
    }
    if let Some(t) = &p.tcp_socket {
        let host = t
            .host
            .as_deref()
            .and_then(|h| h.parse().ok())
            .unwrap_or(pod_ip);
        let port = port(&t.port, c).ok_or("bad port")?;
        return tcp(host, port, timeout).await;
    }
    if let Some(e) = &p.exec {
        let args = e.command.clone().unwrap_or_default();
        let process = crate::pod::spec::exec_process(
            &args,
            &[(
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            )],
            0,
            0,
        );
        return match runtime.exec(container_id, process, timeout).await {
            Ok(0) => Ok(()),
            Ok(code) => Err(format!("command exited with {code}")),
            Err(e) => Err(e.to_string()),
        };
    }
    Err("probe has no handler".into())
}

/// Probes one container attempt until the channel closes or the task is
/// aborted (the worker aborts it when the attempt ends).
pub async fn prober<R: ContainerRuntime>(
    runtime: Arc<R>,
    container: Container,
    attempt: u32,
    container_id: String,
    pod_ip: IpAddr,
    tx: mpsc::Sender<Event>,
) {
    struct Slot {
        kind: Kind,
        probe: Probe,
        tracker: Tracker,
        next: tokio::time::Instant,
    }
    let start = tokio::time::Instant::now();
    let mk = |kind, p: &Option<Probe>| {
        p.as_ref().map(|p| Slot {
            kind,
            probe: p.clone(),
            tracker: Tracker::new(p),
            next: start + secs(p.initial_delay_seconds, 0),
        })
    };
    let mut startup = mk(Kind::Startup, &container.startup_probe);
    let mut others: Vec<Slot> = [
        mk(Kind::Liveness, &container.liveness_probe),
        mk(Kind::Readiness, &container.readiness_probe),
    ]
    .into_iter()
    .flatten()
    .collect();
    loop {
        let gated = startup.is_some();
        let next = match &startup {
            Some(s) => s.next,
            None => match others.iter().map(|s| s.next).min() {
                Some(n) => n,
                None => return,
            },
        };
        tokio::time::sleep_until(next).await;
        let now = tokio::time::Instant::now();
        let slots: Vec<&mut Slot> = if gated {
            startup.iter_mut().collect()
        } else {
            others.iter_mut().filter(|s| s.next <= now).collect()
        };
        for s in slots {
            let r = run_once(
                &s.probe,
                &container,
                pod_ip,
                &container_id,
                runtime.as_ref(),
            )
            .await;
            s.next = tokio::time::Instant::now()
                + secs(s.probe.period_seconds, 10).max(Duration::from_millis(100));
            let ok = r.is_ok();
            let changed = s.tracker.record(ok);
            if changed.is_some() || !ok {
                let ev = Event {
                    container: container.name.clone(),
                    attempt,
                    kind: s.kind,
                    ok: changed.unwrap_or(ok),
                    changed: changed.is_some(),
                    message: r.err().unwrap_or_default(),
                };
                if tx.send(ev).await.is_err() {
                    return;
                }
            }
        }
        if gated {
            if let Some(s) = &startup {
                if s.tracker.result == Some(true) {
                    startup = None;
                    let now = tokio::time::Instant::now();
                    for o in &mut others {
                        o.next = o.next.max(now);
                    }
                } else if s.tracker.result == Some(false) {
                    // The worker restarts the container; nothing more to do.
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        let p = Probe {
            failure_threshold: Some(2),
            success_threshold: Some(2),
            ..Default::default()
        };
        let mut t = Tracker::new(&p);
        assert_eq!(t.record(true), None);
        assert_eq!(t.record(true), Some(true));
        assert_eq!(t.record(true), None);
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(true), None);
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(false), Some(false));
        let mut d = Tracker::new(&Probe::default());
        assert_eq!(d.record(true), Some(true));
        assert_eq!(d.record(false), None);
        assert_eq!(d.record(false), None);
        assert_eq!(d.record(false), Some(false));
    }

    #[test]
    fn named_ports_resolve() {
        let c = Container {
            ports: Some(vec![k8s_openapi::api::core::v1::ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert_eq!(port(&IntOrString::String("http".into()), &c), Some(8080));
        assert_eq!(port(&IntOrString::Int(81), &c), Some(81));
        assert_eq!(port(&IntOrString::String("nope".into()), &c), None);
    }
}
