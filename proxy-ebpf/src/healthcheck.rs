//! Health-check node ports for externalTrafficPolicy: Local services: an
//! HTTP listener per port answering 200 when this node has a local
//! endpoint and 503 when it has none, so load balancers send traffic only
//! to nodes that keep it. It must never answer for a port no service owns.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv6Addr, SocketAddr, TcpListener as StdListener};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::proxier::HealthCheck;
use capstan_nodenet::Place;

type Entries = Arc<Mutex<BTreeMap<u16, HealthCheck>>>;

pub struct HealthServer {
    place: Place,
    entries: Entries,
    listeners: HashMap<u16, JoinHandle<()>>,
}

#[derive(Debug, thiserror::Error)]
#[error("health check node port {port}: {source}")]
pub struct HealthError {
    pub port: u16,
    #[source]
    pub source: std::io::Error,
}

impl HealthServer {
    pub fn new(place: Place) -> HealthServer {
        HealthServer {
            place,
            entries: Arc::default(),
            listeners: HashMap::new(),
        }
    }

    /// Serves exactly `desired`: opens new ports, closes gone ones, and
    /// updates the counts the open ones answer with. Call inside a tokio
    /// runtime.
    pub fn update(&mut self, desired: BTreeMap<u16, HealthCheck>) -> Vec<HealthError> {
        let mut errors = Vec::new();
        self.listeners.retain(|port, task| {
            let keep = desired.contains_key(port);
            if !keep {
                task.abort();
            }
            keep
        });
        for port in desired.keys() {
            if self.listeners.contains_key(port) {
                continue;
            }
            match self.bind(*port) {
                Ok(l) => {
                    let entries = self.entries.clone();
                    let port = *port;
                    self.listeners
                        .insert(port, tokio::spawn(serve(l, port, entries)));
                }
                Err(source) => errors.push(HealthError {
                    port: *port,
                    source,
                }),
            }
        }
        if let Ok(mut e) = self.entries.lock() {
            *e = desired;
        }
        errors
    }

    fn bind(&self, port: u16) -> std::io::Result<TcpListener> {
        // Dual-stack wildcard, bound in the proxy's namespace.
        let l = self.place.run_in(move || {
            let l = StdListener::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)))?;
            l.set_nonblocking(true)?;
            Ok(l)
        })?;
        TcpListener::from_std(l)
    }
}

impl Drop for HealthServer {
    fn drop(&mut self) {
        for task in self.listeners.values() {
            task.abort();
        }
    }
}

async fn serve(l: TcpListener, port: u16, entries: Entries) {
    loop {
        let Ok((mut conn, _)) = l.accept().await else {
            continue;
        };
        let entries = entries.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let mut got = 0;
            // Read the request head; its content does not matter.
            while got < buf.len() {
                match conn.read(&mut buf[got..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n,
                }
                if buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let entry = entries.lock().ok().and_then(|e| e.get(&port).cloned());
            let (code, body) = match entry {
                Some(h) => (
                    if h.local_endpoints > 0 { 200 } else { 503 },
                    serde_json::json!({
                        "service": {"namespace": h.service.namespace, "name": h.service.name},
                        "localEndpoints": h.local_endpoints,
                    })
                    .to_string(),
                ),
                None => (404, "{}".to_string()),
            };
            let reason = match code {
                200 => "OK",
                503 => "Service Unavailable",
                _ => "Not Found",
            };
            let resp = format!(
                "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(resp.as_bytes()).await;
            let _ = conn.shutdown().await;
        });
    }
}
