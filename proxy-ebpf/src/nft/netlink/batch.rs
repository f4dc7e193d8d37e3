//! One atomic element transaction: batch begin, flush/delete/add element
//! messages (split to stay under an attribute's 64 KiB), batch end; each
//! message remembers what it did, so a refusal can be named.

use super::consts::*;
use super::writer::{family_code, Writer};
use crate::model::IpFamily;
use crate::nft::element::{Key, Value};

/// Elements per message stay well under the 64 KiB an attribute can hold.
const MAX_ELEMENTS_BYTES: usize = 48 * 1024;

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
    pub(super) fn finish(mut self) -> (Vec<u8>, Vec<String>) {
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

#[cfg(test)]
mod tests {
    use super::super::parse::{attributes, cstr, messages};
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
