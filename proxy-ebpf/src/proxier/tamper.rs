//! Noticing that someone else altered the proxy's table, so that the next
//! sync is full and restores it.

use std::time::{Duration, Instant};

use crate::nft::genid;

use super::Proxy;

/// How often a partial sync first checks that nobody altered the table:
/// listing costs an nft run, too much for every sync at 10,000 services.
pub const DEFAULT_TAMPER_CHECK_INTERVAL: Duration = Duration::from_secs(60);

impl Proxy {
    /// How often partial syncs check the table for outside changes.
    pub fn set_tamper_check_interval(&mut self, every: Duration) {
        self.tamper_every = every;
    }

    pub(super) fn tamper_check_due(&mut self) -> bool {
        let due = self
            .last_tamper_check
            .is_none_or(|t| t.elapsed() >= self.tamper_every);
        if due {
            self.last_tamper_check = Some(Instant::now());
        }
        due
    }

    /// Whether anyone else committed to nf_tables in the namespace since
    /// our last transaction (the generation id moved): then the table may
    /// have been altered and only a full sync restores it. Listing the
    /// table to find out would cost more than the full sync (nft fetches
    /// every element: ~4 s at 10,000 services, against < 1 s). A foreign
    /// commit landing between our commit and our reading of the id goes
    /// unnoticed until the next foreign commit or the periodic full resync.
    pub(super) fn tampered(&mut self) -> bool {
        let now = self.generation();
        now.is_none() || now != self.generation
    }

    /// The generation id, read on the proxy's socket.
    pub(super) fn generation(&mut self) -> Option<u32> {
        let now = self.socket().ok().map(|s| s.generation());
        match now {
            Some(Ok(g)) => Some(g),
            _ => {
                self.socket = None;
                genid::generation(&self.place).ok()
            }
        }
    }
}
