//! The test server each pod runs (every line answered with "<pod> <client
//! address>") and the TCP/UDP clients that ask it from inside a namespace.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use capstan_proxy::Place;

use super::network::*;

fn canonical(a: SocketAddr) -> IpAddr {
    a.ip().to_canonical()
}

/// Serves TCP and UDP (dual-stack) in the pod: every line or datagram is
/// answered with "<pod> <client address>". Threads live until the process ends.
pub fn start_server(pod: &Pod) {
    let name = pod.name.clone();
    let (tcp, udp) = pod
        .place()
        .run_in(|| {
            let t = TcpListener::bind((Ipv6Addr::UNSPECIFIED, TCP_PORT))?;
            let u = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, UDP_PORT))?;
            Ok((t, u))
        })
        .expect("bind test server");
    serve_tcp(tcp, name.clone());
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((_, peer)) = udp.recv_from(&mut buf) {
            let _ = udp.send_to(format!("{name} {}", canonical(peer)).as_bytes(), peer);
        }
    });
}

/// A second TCP server in the pod on `port`, answering as `label` (so a
/// client sees which port the proxy chose).
pub fn start_tcp_server_on(pod: &Pod, port: u16, label: &str) {
    let tcp = pod
        .place()
        .run_in(move || TcpListener::bind((Ipv6Addr::UNSPECIFIED, port)))
        .expect("bind extra test server");
    serve_tcp(tcp, label.to_string());
}

fn serve_tcp(tcp: TcpListener, name: String) {
    let n = name;
    std::thread::spawn(move || {
        for conn in tcp.incoming().flatten() {
            let n = n.clone();
            std::thread::spawn(move || {
                let Ok(peer) = conn.peer_addr() else { return };
                let Ok(read) = conn.try_clone() else { return };
                let mut out = conn;
                for line in BufReader::new(read).lines() {
                    if line.is_err() || writeln!(out, "{n} {}", canonical(peer)).is_err() {
                        return;
                    }
                }
            });
        }
    });
}

/// One request over a fresh TCP connection from `place`: ("<pod>", client ip).
pub fn tcp_request(
    place: &Place,
    to: SocketAddr,
    timeout: Duration,
) -> std::io::Result<(String, IpAddr)> {
    place.run_in(move || {
        let s = TcpStream::connect_timeout(&to, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        let mut w = s.try_clone()?;
        w.write_all(b"hi\n")?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line)?;
        parse_answer(&line)
    })
}

pub fn parse_answer(line: &str) -> std::io::Result<(String, IpAddr)> {
    let mut it = line.split_whitespace();
    let pod = it.next().unwrap_or_default().to_string();
    let ip = it
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad answer {line:?}")))?;
    Ok((pod, ip))
}

/// A connection kept open across steps (one request per `ask`).
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    pub fn open(place: &Place, to: SocketAddr) -> std::io::Result<Conn> {
        let s = place.run_in(move || TcpStream::connect_timeout(&to, Duration::from_secs(2)))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        Ok(Conn {
            writer: s.try_clone()?,
            reader: BufReader::new(s),
        })
    }

    pub fn ask(&mut self) -> std::io::Result<(String, IpAddr)> {
        self.writer.write_all(b"hi\n")?;
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other("connection closed"));
        }
        parse_answer(&line)
    }
}

/// A UDP socket bound in `place` (its source port stays fixed).
pub fn udp_socket(place: &Place, v6: bool) -> UdpSocket {
    let s = place
        .run_in(move || {
            if v6 {
                UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0))
            } else {
                UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
            }
        })
        .expect("udp socket");
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    s
}

pub fn udp_ask(s: &UdpSocket, to: SocketAddr) -> std::io::Result<(String, IpAddr)> {
    s.send_to(b"hi", to)?;
    let mut buf = [0u8; 200];
    let (n, _) = s.recv_from(&mut buf)?;
    parse_answer(&String::from_utf8_lossy(&buf[..n]))
}
