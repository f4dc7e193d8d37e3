//! nf_tables over netlink for what changes often: element batches (flush,
//! delete, add: one atomic transaction) and the names of a table's chains
//! and sets. No nft process, no cache fetch: a one-service change costs a
//! single sendmsg. It must never touch a table other than the one it is
//! given, nor write rules (structure stays nft text, exec.rs).
//!
//! Hand-written: `rustables` and mullvad's `nftnl` are not in the build
//! (the latter needs libnftnl), and the few messages used here (batch
//! begin/end, NEWSETELEM, DELSETELEM, GETCHAIN/GETSET dumps) are small;
//! constants are from linux/netfilter/nf_tables.h and nfnetlink.h.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::element::{Key, Value};
use crate::model::IpFamily;
use crate::netns::Place;

const NETLINK_NETFILTER: libc::c_int = 12;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 16;
const NFNL_MSG_BATCH_END: u16 = 17;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_NEWSET: u16 = 9;
const NFT_MSG_GETSET: u16 = 10;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_CREATE: u16 = 0x400;
const NLA_F_NESTED: u16 = 0x8000;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NF_DROP: i32 = 0;
const NFT_GOTO: i32 = -4;
/// Elements per message stay well under the 64 KiB an attribute can hold.
const MAX_ELEMENTS_BYTES: usize = 48 * 1024;

fn family_code(f: IpFamily) -> u8 {
    match f {
        IpFamily::V4 => libc::NFPROTO_IPV4 as u8,
        IpFamily::V6 => libc::NFPROTO_IPV6 as u8,
    }
}

/// Appends netlink messages and attributes to one buffer.
#[derive(Debug, Default)]
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// Starts a message; returns its offset for `end_msg`.
    fn begin_msg(&mut self, kind: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&[family, 0]);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        at
    }

    fn end_msg(&mut self, at: usize) {
        self.pad();
        let len = (self.buf.len() - at) as u32;
        self.buf[at..at + 4].copy_from_slice(&len.to_ne_bytes());
    }

    fn attr(&mut self, kind: u16, data: &[u8]) {
        let len = (4 + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn attr_str(&mut self, kind: u16, s: &str) {
        let mut d = Vec::with_capacity(s.len() + 1);
        d.extend_from_slice(s.as_bytes());
        d.push(0);
        self.attr(kind, &d);
    }

    fn nest(&mut self, kind: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        at
    }

    fn end_nest(&mut self, at: usize) {
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }
}

/// What one element carries besides its key.
fn write_value(w: &mut Writer, v: &Value, scratch: &mut Vec<u8>) {
    let data = w.nest(NFTA_SET_ELEM_DATA);
    match v {
        Value::Target(addr, port) => {
            scratch.clear();
            match addr {
                std::net::IpAddr::V4(a) => scratch.extend_from_slice(&a.octets()),
                std::net::IpAddr::V6(a) => scratch.extend_from_slice(&a.octets()),
            }
            let p = port.to_be_bytes();
            scratch.extend_from_slice(&[p[0], p[1], 0, 0]);
            w.attr(NFTA_DATA_VALUE, scratch);
        }
        Value::Goto(chain) => {
            let verdict = w.nest(NFTA_DATA_VERDICT);
            w.attr(NFTA_VERDICT_CODE, &NFT_GOTO.to_be_bytes());
            w.attr_str(NFTA_VERDICT_CHAIN, chain);
            w.end_nest(verdict);
        }
        Value::Drop => {
            let verdict = w.nest(NFTA_DATA_VERDICT);
            w.attr(NFTA_VERDICT_CODE, &NF_DROP.to_be_bytes());
            w.end_nest(verdict);
        }
    }
    w.end_nest(data);
}

/// One atomic element transaction on one table (both families may share
/// a batch: each operation names its own).
#[derive(Debug, Default)]
pub struct Batch {
    w: Writer,
    seq: u32,
    /// What each acknowledged message did, by sequence number - 1.
    what: Vec<String>,
    elements: usize,
    /// The message being written, if any.
    open: Option<usize>,
}

impl Batch {
    pub fn new() -> Batch {
        let mut b = Batch::default();
        let at = b.w.begin_msg(
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            0,
            0,
            NFNL_SUBSYS_NFTABLES,
        );
        b.w.end_msg(at);
        b
    }

    /// Element operations (flushes count as one).
    pub fn len(&self) -> usize {
        self.elements
    }

    pub fn is_empty(&self) -> bool {
        self.what.is_empty()
    }

    fn begin(&mut self, kind: u16, family: IpFamily, table: &str, set: &str, what: String) {
        self.seq += 1;
        self.what.push(what);
        let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE;
        let at = self.w.begin_msg(
            (NFNL_SUBSYS_NFTABLES << 8) | kind,
            flags,
            self.seq,
            family_code(family),
            0,
        );
        self.w.attr_str(NFTA_SET_ELEM_LIST_TABLE, table);
        self.w.attr_str(NFTA_SET_ELEM_LIST_SET, set);
        self.open = Some(at);
    }

    /// Removes every element of `set`.
    pub fn flush(&mut self, family: IpFamily, table: &str, set: &str) {
        self.begin(
            NFT_MSG_DELSETELEM,
            family,
            table,
            set,
            format!("flush set {} {table} {set}", family.nft()),
        );
        self.close();
        self.elements += 1;
    }

    /// Deletes these keys from `set`.
    pub fn delete<'a>(
        &mut self,
        family: IpFamily,
        table: &str,
        set: &str,
        keys: impl IntoIterator<Item = &'a Key>,
    ) {
        self.elements_of(NFT_MSG_DELSETELEM, family, table, set, keys, |_, _, _| {});
    }

    /// Adds these elements to `set` (keys only for a plain set).
    pub fn add<'a>(
        &mut self,
        family: IpFamily,
        table: &str,
        set: &str,
        elems: impl IntoIterator<Item = (&'a Key, Option<&'a Value>)>,
    ) {
        let mut values = Vec::new();
        let keys: Vec<&Key> = elems
            .into_iter()
            .map(|(k, v)| {
                values.push(v);
                k
            })
            .collect();
        let mut i = 0;
        self.elements_of(
            NFT_MSG_NEWSETELEM,
            family,
            table,
            set,
            keys,
            |w, _, scratch| {
                if let Some(Some(v)) = values.get(i) {
                    write_value(w, v, scratch);
                }
                i += 1;
            },
        );
    }

    fn elements_of<'a>(
        &mut self,
        kind: u16,
        family: IpFamily,
        table: &str,
        set: &str,
        keys: impl IntoIterator<Item = &'a Key>,
        mut value: impl FnMut(&mut Writer, &Key, &mut Vec<u8>),
    ) {
        let verb = if kind == NFT_MSG_NEWSETELEM {
            "add"
        } else {
            "delete"
        };
        let mut scratch = Vec::with_capacity(64);
        let mut list: Option<usize> = None;
        for key in keys {
            if list.is_some_and(|at| self.w.buf.len() - at > MAX_ELEMENTS_BYTES) {
                if let Some(at) = list.take() {
                    self.w.end_nest(at);
                }
                self.close();
            }
            if list.is_none() {
                let what = format!("{verb} element {} {table} {set}", family.nft());
                self.begin(kind, family, table, set, what);
                list = Some(self.w.nest(NFTA_SET_ELEM_LIST_ELEMENTS));
            }
            let elem = self.w.nest(NFTA_LIST_ELEM);
            let k = self.w.nest(NFTA_SET_ELEM_KEY);
            scratch.clear();
            key.encode(&mut scratch);
            self.w.attr(NFTA_DATA_VALUE, &scratch);
            self.w.end_nest(k);
            value(&mut self.w, key, &mut scratch);
            self.w.end_nest(elem);
            self.elements += 1;
        }
        if let Some(at) = list {
            self.w.end_nest(at);
            self.close();
        }
    }

    fn close(&mut self) {
        if let Some(at) = self.open.take() {
            self.w.end_msg(at);
        }
    }

    /// The batch's bytes, ended.
    fn finish(mut self) -> (Vec<u8>, Vec<String>) {
        self.close();
        let at = self.w.begin_msg(
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            self.seq + 1,
            0,
            NFNL_SUBSYS_NFTABLES,
        );
        self.w.end_msg(at);
        (self.w.buf, self.what)
    }
}

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

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
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

    fn send(&self, buf: &[u8]) -> io::Result<()> {
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

    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
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

    /// The namespace's nf_tables generation id (genid.rs), on this
    /// socket: a fresh socket and thread per query cost 8-17 ms each
    /// (measured at 10,000 services), more than the element batch.
    pub fn generation(&self) -> io::Result<u32> {
        self.send(&super::genid::request(1))?;
        let mut buf = [0u8; 512];
        let n = self.recv(&mut buf)?;
        super::genid::parse(&buf[..n])
    }

    /// Names of the chains and of the sets of `family table` (a dump of
    /// each: no elements, no rules).
    pub fn names(&self, family: IpFamily, table: &str) -> Result<TableNames, NetlinkError> {
        Ok(TableNames {
            chains: self.dump_names(family, table, NFT_MSG_GETCHAIN, NFT_MSG_NEWCHAIN)?,
            sets: self.dump_names(family, table, NFT_MSG_GETSET, NFT_MSG_NEWSET)?,
        })
    }

    fn dump_names(
        &self,
        family: IpFamily,
        table: &str,
        get: u16,
        new: u16,
    ) -> Result<Vec<String>, NetlinkError> {
        let mut w = Writer::default();
        let at = w.begin_msg(
            (NFNL_SUBSYS_NFTABLES << 8) | get,
            NLM_F_REQUEST | NLM_F_DUMP,
            1,
            family_code(family),
            0,
        );
        // Sets can be filtered by table; chains are filtered here.
        if get == NFT_MSG_GETSET {
            w.attr_str(NFTA_SET_TABLE, table);
        }
        w.end_msg(at);
        self.send(&w.buf)?;
        let (table_attr, name_attr) = if get == NFT_MSG_GETCHAIN {
            (NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME)
        } else {
            (NFTA_SET_TABLE, NFTA_SET_NAME)
        };
        let mut names = Vec::new();
        let mut rbuf = vec![0u8; 256 * 1024];
        loop {
            let n = self.recv(&mut rbuf)?;
            for (kind, _, payload) in messages(&rbuf[..n]) {
                match kind {
                    NLMSG_DONE => return Ok(names),
                    NLMSG_ERROR => {
                        let code = payload
                            .get(..4)
                            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                            .unwrap_or(0);
                        if code == -libc::ENOENT {
                            return Ok(names);
                        }
                        return Err(NetlinkError::Rejected {
                            what: format!("list {} {table}", family.nft()),
                            source: io::Error::from_raw_os_error(-code),
                        });
                    }
                    k if k == (NFNL_SUBSYS_NFTABLES << 8) | new => {
                        let attrs = payload.get(4..).unwrap_or(&[]);
                        let mut t = None;
                        let mut name = None;
                        for (a, v) in attributes(attrs) {
                            if a == table_attr {
                                t = Some(cstr(v));
                            } else if a == name_attr {
                                name = Some(cstr(v));
                            }
                        }
                        if let (Some(t), Some(name)) = (t, name) {
                            if t == table {
                                names.push(name);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// The chains and sets a table holds.
#[derive(Debug, Default, Clone)]
pub struct TableNames {
    pub chains: Vec<String>,
    pub sets: Vec<String>,
}

fn cstr(v: &[u8]) -> String {
    let end = v.iter().position(|b| *b == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

/// (type, sequence, payload after the nlmsghdr) of each message in `buf`.
fn messages(buf: &[u8]) -> Vec<(u16, u32, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 16 <= buf.len() {
        let len = u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
        if len < 16 || at + len > buf.len() {
            break;
        }
        let kind = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
        let seq = u32::from_ne_bytes([buf[at + 8], buf[at + 9], buf[at + 10], buf[at + 11]]);
        out.push((kind, seq, &buf[at + 16..at + len]));
        at += (len + 3) & !3;
    }
    out
}

/// (type, value) of each attribute in `buf`.
fn attributes(buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= buf.len() {
        let len = u16::from_ne_bytes([buf[at], buf[at + 1]]) as usize;
        let kind = u16::from_ne_bytes([buf[at + 2], buf[at + 3]]) & 0x3fff;
        if len < 4 || at + len > buf.len() {
            break;
        }
        out.push((kind, &buf[at + 4..at + len]));
        at += (len + 3) & !3;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;

    fn key(port: u16) -> Key {
        Key::NodePort {
            proto: Protocol::Tcp,
            port,
        }
    }

    #[test]
    fn batch_is_begin_messages_end() {
        let mut b = Batch::new();
        b.flush(IpFamily::V4, "t", "s");
        let k = key(80);
        let v = Value::Goto("c".into());
        b.add(IpFamily::V4, "t", "m", [(&k, Some(&v))]);
        assert_eq!(b.len(), 2);
        let (buf, what) = b.finish();
        let msgs = messages(&buf);
        let kinds: Vec<u16> = msgs.iter().map(|m| m.0).collect();
        assert_eq!(kinds, vec![16, 0x0a0e, 0x0a0c, 17]);
        assert_eq!(what, vec!["flush set ip t s", "add element ip t m"]);
        // The add: table, set, then the element list with key and verdict.
        let attrs = attributes(&msgs[2].2[4..]);
        assert_eq!(cstr(attrs[0].1), "t");
        assert_eq!(cstr(attrs[1].1), "m");
        let elem = attributes(attrs[2].1);
        let inner = attributes(elem[0].1);
        assert_eq!(inner[0].0, NFTA_SET_ELEM_KEY);
        assert_eq!(attributes(inner[0].1)[0].1, &[6, 0, 0, 0, 0, 80, 0, 0]);
        let verdict = attributes(attributes(inner[1].1)[0].1);
        assert_eq!(verdict[0].1, &NFT_GOTO.to_be_bytes());
        assert_eq!(cstr(verdict[1].1), "c");
    }

    #[test]
    fn large_element_lists_are_split_into_messages() {
        let keys: Vec<Key> = (0..20_000).map(key).collect();
        let mut b = Batch::new();
        b.delete(IpFamily::V6, "t", "m", keys.iter());
        assert_eq!(b.len(), 20_000);
        let (buf, what) = b.finish();
        assert!(what.len() > 1);
        let msgs = messages(&buf);
        assert_eq!(msgs.len(), what.len() + 2);
        assert!(msgs.iter().all(|m| m.2.len() < 65_000));
    }
}
