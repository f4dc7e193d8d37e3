//! The nf_tables generation id of a network namespace: the kernel bumps it
//! on every committed transaction, whoever commits. Read with one netlink
//! request (NFT_MSG_GETGEN), so "has anything changed since our last
//! commit?" costs well under a millisecond where listing a chain with nft
//! fetches the table (~1 s at 10,000 services). It must never write.

use std::io;

use capstan_nodenet::Place;

use super::netlink::consts::{
    NETLINK_NETFILTER, NFNL_SUBSYS_NFTABLES, NFTA_GEN_ID, NFT_MSG_GETGEN, NFT_MSG_NEWGEN,
    NLMSG_ERROR, NLM_F_REQUEST,
};

const HEADER: usize = 16 + 4; // nlmsghdr + nfgenmsg

/// The GETGEN request: nlmsghdr + nfgenmsg (family unspec, version 0).
pub(crate) fn request(seq: u32) -> [u8; HEADER] {
    let mut m = [0u8; HEADER];
    m[0..4].copy_from_slice(&(HEADER as u32).to_ne_bytes());
    let kind = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN;
    m[4..6].copy_from_slice(&kind.to_ne_bytes());
    m[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    m[8..12].copy_from_slice(&seq.to_ne_bytes());
    m
}

/// The generation id from the kernel's answer.
pub(crate) fn parse(buf: &[u8]) -> io::Result<u32> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("GETGEN: {what}"));
    if buf.len() < 16 {
        return Err(bad("short answer"));
    }
    let u16_at = |i: usize| u16::from_ne_bytes([buf[i], buf[i + 1]]);
    let len = (u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize).min(buf.len());
    let kind = u16_at(4);
    if kind == NLMSG_ERROR {
        let code = buf
            .get(16..20)
            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            .unwrap_or(0);
        return Err(io::Error::from_raw_os_error(-code));
    }
    if kind != (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN {
        return Err(bad("unexpected message type"));
    }
    let mut at = HEADER;
    while at + 4 <= len {
        let alen = u16_at(at) as usize;
        let atype = u16_at(at + 2) & 0x3fff;
        if alen < 4 || at + alen > len {
            break;
        }
        if atype == NFTA_GEN_ID && alen >= 8 {
            let v = &buf[at + 4..at + 8];
            return Ok(u32::from_be_bytes([v[0], v[1], v[2], v[3]]));
        }
        at += (alen + 3) & !3;
    }
    Err(bad("no generation id"))
}

fn query() -> io::Result<u32> {
    // SAFETY: plain socket syscalls on a descriptor this function owns and
    // closes; buffers outlive the calls that use them.
    unsafe {
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            NETLINK_NETFILTER,
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let result = (|| {
            let req = request(1);
            let mut addr: libc::sockaddr_nl = std::mem::zeroed();
            addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
            let sent = libc::sendto(
                fd,
                req.as_ptr().cast(),
                req.len(),
                0,
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            );
            if sent < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut buf = [0u8; 512];
            let n = libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0);
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            parse(&buf[..n as usize])
        })();
        libc::close(fd);
        result
    }
}

/// The current nf_tables generation id in `place`'s network namespace.
pub fn generation(place: &Place) -> io::Result<u32> {
    if place.netns.is_none() {
        return query();
    }
    place.run_in(query)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_is_a_getgen_message() {
        let r = request(7);
        assert_eq!(u32::from_ne_bytes([r[0], r[1], r[2], r[3]]), 20);
        assert_eq!(u16::from_ne_bytes([r[4], r[5]]), 0x0a10);
        assert_eq!(&r[16..20], &[0, 0, 0, 0]);
    }

    fn answer(kind: u16, attrs: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((HEADER + attrs.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&[0; 4]);
        m.extend_from_slice(attrs);
        m
    }

    #[test]
    fn parses_the_generation_id_attribute() {
        let mut attrs = Vec::new();
        // NFTA_GEN_PROC_PID first, then NFTA_GEN_ID (big endian).
        attrs.extend_from_slice(&8u16.to_ne_bytes());
        attrs.extend_from_slice(&2u16.to_ne_bytes());
        attrs.extend_from_slice(&99u32.to_be_bytes());
        attrs.extend_from_slice(&8u16.to_ne_bytes());
        attrs.extend_from_slice(&NFTA_GEN_ID.to_ne_bytes());
        attrs.extend_from_slice(&0x0102_0304u32.to_be_bytes());
        assert_eq!(parse(&answer(0x0a0f, &attrs)).unwrap(), 0x0102_0304);
        assert!(parse(&answer(0x0a0f, &[])).is_err());
        assert!(parse(&answer(0x0a05, &attrs)).is_err());
    }

    #[test]
    fn reports_netlink_errors() {
        let mut err = Vec::new();
        err.extend_from_slice(&36u32.to_ne_bytes());
        err.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        err.extend_from_slice(&[0; 10]);
        err.extend_from_slice(&(-libc::EPERM).to_ne_bytes());
        err.extend_from_slice(&[0; 16]); // the request's header, echoed
        assert_eq!(parse(&err).unwrap_err().raw_os_error(), Some(libc::EPERM));
    }
}
