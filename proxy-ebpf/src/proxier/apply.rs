//! Applying a planned sync: structure as nft text, elements as one
//! netlink batch, stale structure as nft text.

use std::collections::BTreeSet;

use crate::nft::netlink::{Batch, NetlinkError, Socket};
use crate::nft::skeleton::TABLE;
use crate::plan::Transaction;

use super::{Proxy, SyncError};

impl Proxy {
    /// The netlink socket for element batches, opened in the namespace on
    /// first use and again after a failure.
    pub(super) fn socket(&mut self) -> Result<&Socket, SyncError> {
        if self.socket.is_none() {
            let s =
                Socket::open(&self.place).map_err(|e| SyncError::Elements(NetlinkError::Io(e)))?;
            self.socket = Some(s);
        }
        self.socket
            .as_ref()
            .ok_or_else(|| SyncError::Elements(NetlinkError::Protocol("no socket".into())))
    }

    /// Runs the three steps; the first failure stops it.
    pub(super) fn apply(
        &mut self,
        full: bool,
        before: Vec<String>,
        batch: Batch,
        mut after: Vec<String>,
        desired: &[(BTreeSet<String>, BTreeSet<String>)],
    ) -> Result<(usize, bool), SyncError> {
        let mut n = before.len() + batch.len() + after.len();
        let mut recreated = false;
        if let Err(e) = self.nft.apply(before.clone()) {
            if !full {
                return Err(SyncError::Apply(e));
            }
            // The table holds something the skeleton cannot be written
            // over (e.g. a map of another type): start from an empty one.
            tracing::warn!(error = %e, "proxy table not restorable in place; re-creating it");
            let mut fresh = Vec::with_capacity(before.len() + 2 * self.families.len());
            for f in &self.families {
                fresh.push(f.table.cmd("add", "table", ""));
                fresh.push(f.table.cmd("delete", "table", ""));
            }
            fresh.extend(before);
            self.nft.apply(fresh).map_err(SyncError::Apply)?;
            recreated = true;
        }
        let applied = self.socket()?.apply(batch);
        if let Err(e) = applied {
            self.socket = None;
            return Err(SyncError::Elements(e));
        }
        if full {
            // What the table holds beyond what is desired: left by an
            // earlier run, or added by someone else.
            for (f, (chains, sets)) in self.families.iter().zip(desired) {
                let names = match self.socket.as_ref() {
                    Some(s) => s.names(f.table.family, TABLE),
                    None => continue,
                }
                .map_err(SyncError::Elements)?;
                let mut t = Transaction::default();
                for c in names.chains.iter().filter(|c| !chains.contains(*c)) {
                    t.stale_chain(&f.table, c);
                }
                for s in names.sets.iter().filter(|s| !sets.contains(*s)) {
                    t.stale_set(&f.table, s);
                }
                after.extend(t.after());
            }
            n += after.len();
        }
        self.nft.apply(after).map_err(SyncError::Apply)?;
        Ok((n, recreated))
    }
}
