//! SCTP without an SCTP stack. The lab kernel has SCTP conntrack and NAT
//! (`CONFIG_NF_CT_PROTO_SCTP=y`) but no SCTP sockets (`CONFIG_IP_SCTP` is
//! off, and there are no modules to load), so the suite speaks just enough
//! SCTP over raw IPv4 sockets: the client sends an INIT, the endpoint's
//! server answers with an INIT ACK that carries, as its state cookie, what
//! it saw (its name, the destination the packet reached, the sender). That
//! is what the proxy has to get right: DNAT of the INIT, conntrack's
//! reverse NAT of the answer. IPv4 and IPv6; an IPv6 raw socket delivers
//! no IP header, so there the server reports no destination address (its
//! port still shows the DNAT).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use capstan_proxy::Place;

const IPPROTO_SCTP: i32 = 132;
const CHUNK_INIT: u8 = 1;
const CHUNK_INIT_ACK: u8 = 2;
const PARAM_STATE_COOKIE: u16 = 7;

/// CRC32c (Castagnoli), as SCTP's checksum (RFC 9260 appendix A).
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in data {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// One SCTP packet as a raw socket delivers it.
#[derive(Debug, Clone)]
pub struct Packet {
    pub src: SocketAddr,
    /// The destination address: None on IPv6 (not delivered).
    pub dst_ip: Option<IpAddr>,
    pub dst_port: u16,
    pub vtag: u32,
    pub chunk_type: u8,
    /// The INIT / INIT ACK's initiate tag.
    pub init_tag: u32,
    /// The INIT ACK's state cookie, as text.
    pub cookie: String,
}

/// SCTP common header + one INIT or INIT ACK chunk (+ a cookie), with
/// its checksum.
fn build(
    src_port: u16,
    dst_port: u16,
    vtag: u32,
    chunk: u8,
    init_tag: u32,
    cookie: &[u8],
) -> Vec<u8> {
    let mut p = Vec::with_capacity(64);
    p.extend(src_port.to_be_bytes());
    p.extend(dst_port.to_be_bytes());
    p.extend(vtag.to_be_bytes());
    p.extend([0u8; 4]); // checksum, filled below
    let param_len = if cookie.is_empty() {
        0
    } else {
        4 + cookie.len()
    };
    let chunk_len = 20 + param_len;
    p.push(chunk);
    p.push(0);
    p.extend((chunk_len as u16).to_be_bytes());
    p.extend(init_tag.to_be_bytes());
    p.extend(65535u32.to_be_bytes()); // a_rwnd
    p.extend(1u16.to_be_bytes()); // outbound streams
    p.extend(1u16.to_be_bytes()); // inbound streams
    p.extend(1u32.to_be_bytes()); // initial TSN
    if !cookie.is_empty() {
        p.extend(PARAM_STATE_COOKIE.to_be_bytes());
        p.extend((param_len as u16).to_be_bytes());
        p.extend(cookie);
    }
    while p.len() % 4 != 0 {
        p.push(0);
    }
    // The kernel stores the CRC little-endian (sctp_compute_cksum).
    let crc = crc32c(&p);
    p[8..12].copy_from_slice(&crc.to_le_bytes());
    p
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses an IPv4 packet (header included) carrying SCTP.
fn parse_v4(b: &[u8]) -> Option<Packet> {
    let ihl = usize::from(*b.first()? & 0x0f) * 4;
    let src = IpAddr::V4(Ipv4Addr::from(be32(b, 12)?));
    let dst = IpAddr::V4(Ipv4Addr::from(be32(b, 16)?));
    parse_sctp(b.get(ihl..)?, src, Some(dst))
}

/// Parses an SCTP packet from `src` (to `dst`, if known).
fn parse_sctp(s: &[u8], src: IpAddr, dst: Option<IpAddr>) -> Option<Packet> {
    let chunk_type = *s.get(12)?;
    let chunk_len = usize::from(be16(s, 14)?);
    let cookie = if chunk_len > 20 {
        let plen = usize::from(be16(s, 34)?);
        String::from_utf8_lossy(s.get(36..32 + plen)?).into_owned()
    } else {
        String::new()
    };
    Some(Packet {
        src: SocketAddr::new(src, be16(s, 0)?),
        dst_ip: dst,
        dst_port: be16(s, 2)?,
        vtag: be32(s, 4)?,
        chunk_type,
        init_tag: be32(s, 16)?,
        cookie,
    })
}

/// A raw socket for protocol 132 in the namespace it was opened in.
pub struct RawSctp {
    fd: OwnedFd,
    v6: bool,
}

impl RawSctp {
    pub fn open(place: &Place, timeout: Duration, v6: bool) -> io::Result<RawSctp> {
        place.run_in(move || {
            let domain = if v6 { libc::AF_INET6 } else { libc::AF_INET };
            // SAFETY: plain socket(2); the descriptor is owned right away.
            let fd = unsafe { libc::socket(domain, libc::SOCK_RAW, IPPROTO_SCTP) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: fd is a fresh descriptor nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            let tv = libc::timeval {
                tv_sec: timeout.as_secs() as libc::time_t,
                tv_usec: timeout.subsec_micros() as libc::suseconds_t,
            };
            // SAFETY: valid descriptor, option value of the right size.
            let r = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    (&tv as *const libc::timeval).cast(),
                    std::mem::size_of::<libc::timeval>() as libc::socklen_t,
                )
            };
            if r != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(RawSctp { fd, v6 })
        })
    }

    fn send(&self, to: IpAddr, packet: &[u8]) -> io::Result<()> {
        // SAFETY: an all-zero sockaddr_storage is a valid (unspecified) address.
        let mut sa: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let len = match to {
            IpAddr::V4(ip) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: 0,
                    sin_addr: libc::in_addr {
                        s_addr: u32::from(ip).to_be(),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
                unsafe { std::ptr::write((&mut sa as *mut libc::sockaddr_storage).cast(), sin) };
                std::mem::size_of::<libc::sockaddr_in>()
            }
            IpAddr::V6(ip) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: 0,
                    sin6_flowinfo: 0,
                    sin6_addr: libc::in6_addr {
                        s6_addr: ip.octets(),
                    },
                    sin6_scope_id: 0,
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
                unsafe { std::ptr::write((&mut sa as *mut libc::sockaddr_storage).cast(), sin6) };
                std::mem::size_of::<libc::sockaddr_in6>()
            }
        };
        // SAFETY: valid descriptor, buffer and address of the sizes given.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&sa as *const libc::sockaddr_storage).cast(),
                len as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The next SCTP packet (anything unparsable is skipped).
    pub fn recv(&self) -> io::Result<Packet> {
        let mut buf = [0u8; 2048];
        loop {
            // SAFETY: an all-zero sockaddr_storage is valid to be overwritten.
            let mut from: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            let mut from_len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            // SAFETY: valid descriptor, buffer and address storage of the sizes given.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&mut from as *mut libc::sockaddr_storage).cast(),
                    &mut from_len,
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let b = &buf[..n as usize];
            let packet = if self.v6 {
                // SAFETY: an AF_INET6 socket fills a sockaddr_in6.
                let sin6: libc::sockaddr_in6 =
                    unsafe { std::ptr::read((&from as *const libc::sockaddr_storage).cast()) };
                parse_sctp(b, IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)), None)
            } else {
                parse_v4(b)
            };
            if let Some(p) = packet {
                return Ok(p);
            }
        }
    }

    /// Sends an INIT from `src_port` to `to`.
    pub fn send_init(&self, src_port: u16, to: SocketAddr, init_tag: u32) -> io::Result<()> {
        let p = build(src_port, to.port(), 0, CHUNK_INIT, init_tag, &[]);
        self.send(to.ip(), &p)
    }

    /// Waits for the INIT ACK that answers an INIT sent with `init_tag`.
    pub fn recv_init_ack(&self, init_tag: u32) -> io::Result<Packet> {
        loop {
            let p = self.recv()?;
            if p.chunk_type == CHUNK_INIT_ACK && p.vtag == init_tag {
                return Ok(p);
            }
        }
    }
}

/// Answers every INIT that reaches `place` (in the family of `v6`) with an
/// INIT ACK whose cookie is "<name> <destination address or -> <port>
/// <sender address>". The thread lives until the process ends.
pub fn start_server(place: &Place, name: &str, v6: bool) -> io::Result<()> {
    let sock = RawSctp::open(place, Duration::ZERO, v6)?;
    let name = name.to_string();
    std::thread::spawn(move || loop {
        let Ok(p) = sock.recv() else { return };
        if p.chunk_type != CHUNK_INIT {
            continue;
        }
        let dst = p
            .dst_ip
            .map_or_else(|| "-".to_string(), |ip| ip.to_string());
        let cookie = format!("{name} {dst} {} {}", p.dst_port, p.src.ip());
        let answer = build(
            p.dst_port,
            p.src.port(),
            p.init_tag,
            CHUNK_INIT_ACK,
            p.init_tag ^ 0x5a5a_5a5a,
            cookie.as_bytes(),
        );
        let _ = sock.send(p.src.ip(), &answer);
    });
    Ok(())
}
