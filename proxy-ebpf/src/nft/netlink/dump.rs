//! Which chains and sets a table holds: GETCHAIN/GETSET dumps (names
//! only, no rules, no elements), for deleting what a full sync no longer
//! renders.

use std::io;

use super::consts::*;
use super::parse::{attributes, cstr, messages};
use super::socket::{NetlinkError, Socket};
use super::writer::{family_code, Writer};
use crate::model::IpFamily;

/// The chains and sets a table holds.
#[derive(Debug, Default, Clone)]
pub struct TableNames {
    pub chains: Vec<String>,
    pub sets: Vec<String>,
}

impl Socket {
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
