//! The NETLINK_NETFILTER socket: opened in the proxy's namespace, sends
//! a batch as one transaction and collects every acknowledgement, and
//! reads the generation id on the same socket.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::batch::Batch;
use super::consts::*;
use super::parse::messages;
use capstan_nodenet::Place;

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("nf_tables netlink socket: {0}")]
    Io(#[from] io::Error),
    #[error("{what}: {source}")]
    Rejected {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("nf_tables netlink: {0}")]
    Protocol(String),
}

/// A NETLINK_NETFILTER socket, opened in the proxy's namespace (a socket
/// stays in the namespace it was created in).
#[derive(Debug)]
pub struct Socket {
    fd: OwnedFd,
}

pub(super) fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

impl Socket {
    pub fn open(place: &Place) -> io::Result<Socket> {
        let open = || -> io::Result<Socket> {
            // SAFETY: socket(2) returns a new descriptor we take ownership of.
            let fd = check(unsafe {
                libc::socket(
                    libc::AF_NETLINK,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    NETLINK_NETFILTER,
                )
            })?;
            // SAFETY: fd is a fresh, valid descriptor owned by nobody else.
            let s = Socket {
                fd: unsafe { OwnedFd::from_raw_fd(fd) },
            };
            // A kernel that answers less than expected must not hang the
            // proxy: a receive that waits this long fails the sync instead.
            let timeout = libc::timeval {
                tv_sec: 30,
                tv_usec: 0,
            };
            // SAFETY: setsockopt reads a timeval from a live local.
            check(unsafe {
                libc::setsockopt(
                    s.fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    (&timeout as *const libc::timeval).cast(),
                    std::mem::size_of::<libc::timeval>() as libc::socklen_t,
                )
            })?;
            Ok(s)
        };
        if place.netns.is_none() {
            open()
        } else {
            place.run_in(open)
        }
    }

    fn set_buffer(&self, opt: libc::c_int, bytes: usize) -> io::Result<()> {
        let v = bytes.min(i32::MAX as usize) as libc::c_int;
        // SAFETY: setsockopt reads an int from a live local.
        check(unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        })?;
        Ok(())
    }

    pub(super) fn send(&self, buf: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_nl is plain data; zeroed means "the kernel".
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: buf and addr outlive the call.
        let n = check(unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                0,
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            ) as libc::c_int
        })?;
        if n as usize != buf.len() {
            return Err(io::Error::other("short netlink send"));
        }
        Ok(())
    }

    pub(super) fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: buf is writable for its length.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        Ok(check(n as libc::c_int)? as usize)
    }

    /// Sends `batch` as one transaction and waits for every message's
    /// answer; the first error names the operation the kernel refused.
    pub fn apply(&self, batch: Batch) -> Result<(), NetlinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let (buf, what) = batch.finish();
        // The whole batch goes in one sendmsg (that is what makes it one
        // transaction), so the send buffer must hold it; every message
        // is acknowledged, so the receive buffer must hold the answers.
        self.set_buffer(libc::SO_SNDBUFFORCE, buf.len() + 4096)?;
        self.set_buffer(libc::SO_RCVBUFFORCE, what.len() * 64 + 65536)?;
        self.send(&buf)?;
        drop(buf);
        let mut pending = what.len();
        let mut first_error: Option<NetlinkError> = None;
        let mut rbuf = vec![0u8; 64 * 1024];
        while pending > 0 {
            let n = self.recv(&mut rbuf)?;
            for (kind, seq, payload) in messages(&rbuf[..n]) {
                if kind != NLMSG_ERROR {
                    continue;
                }
                pending = pending.saturating_sub(1);
                let code = payload
                    .get(..4)
                    .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                    .unwrap_or(0);
                if code != 0 && first_error.is_none() {
                    let op = what
                        .get((seq as usize).wrapping_sub(1))
                        .cloned()
                        .unwrap_or_else(|| format!("message {seq}"));
                    first_error = Some(NetlinkError::Rejected {
                        what: op,
                        source: io::Error::from_raw_os_error(-code),
                    });
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The namespace's nf_tables generation id (nft/genid.rs), on this
    /// socket: a fresh socket and thread per query cost 8-17 ms each
    /// (measured at 10,000 services), more than the element batch.
    pub fn generation(&self) -> io::Result<u32> {
        self.send(&crate::nft::genid::request(1))?;
        let mut buf = [0u8; 512];
        let n = self.recv(&mut buf)?;
        crate::nft::genid::parse(&buf[..n])
    }
}
