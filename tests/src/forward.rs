//! The host-side door into a lab, as kind exposes its API server: a TCP
//! listener in the caller's namespace (the host's loopback) whose every
//! connection is dialled from inside a lab namespace and spliced through.
//! It never adds a host route, link or firewall rule: only sockets.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::netns::Netns;
use crate::LabError;

/// How long one dial into the lab may take before the client is dropped.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// A bound listener plus where its connections go.
pub struct Forwarder {
    listener: TcpListener,
    netns: Arc<Netns>,
    target: SocketAddr,
}

impl Forwarder {
    /// Binds `listen` here (port 0: any free port) for connections that
    /// `serve` dials to `target` from inside `netns`.
    pub fn bind(listen: SocketAddr, netns: Netns, target: SocketAddr) -> Result<Self, LabError> {
        let listener =
            TcpListener::bind(listen).map_err(LabError::io(format!("listen on {listen}")))?;
        Ok(Forwarder {
            listener,
            netns: Arc::new(netns),
            target,
        })
    }

    /// The address actually bound (the kernel's port when 0 was asked).
    pub fn local_addr(&self) -> Result<SocketAddr, LabError> {
        self.listener
            .local_addr()
            .map_err(LabError::io("read the listener's address"))
    }

    /// Accepts forever; one thread per direction of each connection (a
    /// handful of kubectl connections, some of them long watches).
    pub fn serve(self) -> Result<(), LabError> {
        for conn in self.listener.incoming() {
            let client = match conn {
                Ok(c) => c,
                Err(e) => {
                    // A client that reset before accept is its problem, not ours.
                    tracing::debug!(error = %e, "accept failed");
                    continue;
                }
            };
            let netns = Arc::clone(&self.netns);
            let target = self.target;
            std::thread::spawn(move || {
                if let Err(e) = splice(client, &netns, target) {
                    tracing::warn!(%target, error = %e, "forwarded connection failed");
                }
            });
        }
        Ok(())
    }
}

/// Dials `target` from inside `netns` (the socket stays there once made)
/// and copies bytes both ways until each side has closed.
fn splice(client: TcpStream, netns: &Netns, target: SocketAddr) -> Result<(), LabError> {
    let upstream = netns
        .run_in(move || TcpStream::connect_timeout(&target, DIAL_TIMEOUT))?
        .map_err(LabError::io(format!(
            "connect to {target} in {}",
            netns.name()
        )))?;
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (c2, u2) = (
        client
            .try_clone()
            .map_err(LabError::io("clone client socket"))?,
        upstream
            .try_clone()
            .map_err(LabError::io("clone upstream socket"))?,
    );
    let back = std::thread::spawn(move || copy_half(u2, c2));
    copy_half(client, upstream);
    let _ = back.join();
    Ok(())
}

/// Copies `from` into `to` until EOF or an error, then half-closes `to` so
/// the other side sees the end (TLS close_notify and HTTP/2 GOAWAY need it).
fn copy_half(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_ok() {
                    continue;
                }
            }
            Err(_) => {}
        }
        // A reset or a failed write: nothing more can pass either way, so
        // close both fully and let the other direction's thread end too.
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
        return;
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Writes the bound port to `path` atomically, so whoever waits for the
/// file never reads half a number.
pub fn write_port_file(path: &Path, port: u16) -> Result<(), LabError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{port}\n"))
        .map_err(LabError::io(format!("write {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(LabError::io(format!("write {}", path.display())))
}

/// The port a port file names, if it holds one.
pub fn read_port_file(path: &Path) -> Option<u16> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_file_holds_the_port() {
        let dir = std::env::temp_dir().join(format!("capstan-forward-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("api-port");
        write_port_file(&path, 40123).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "40123\n");
        assert_eq!(read_port_file(&path), Some(40123));
        assert_eq!(read_port_file(&dir.join("none")), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
