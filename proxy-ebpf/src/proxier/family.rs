//! One address family's table: what it has programmed, and planning a
//! sync of it (full: everything rendered anew; partial: the changed
//! services diffed against what they programmed).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use crate::model::ServiceKey;
use crate::nft::netlink::Batch;
use crate::nft::skeleton::{Pick, Table, FIXED_CHAINS, FIXED_SETS};
use crate::plan::{full_before, write_full_elements, Transaction};
use crate::render::{render_service, Context, Rendered};
use crate::tracker::ServiceState;

use super::hairpin::hairpin_delta;

pub(super) struct Family {
    pub table: Table,
    pub ctx: Context,
    pub programmed: HashMap<ServiceKey, Rendered>,
    /// How many services list each endpoint address (hairpin set members).
    pub hairpin_refs: HashMap<IpAddr, usize>,
    /// The shared pick chains that exist.
    pub picks: BTreeSet<Pick>,
}

/// What a sync programs in one family, kept until the sync is applied:
/// on a full sync every service, on a partial one the changed ones.
pub(super) struct Planned {
    programmed: HashMap<ServiceKey, Rendered>,
    /// Hairpin reference counts: all of them on a full sync, the changed
    /// ones on a partial one.
    hairpin_counts: HashMap<IpAddr, usize>,
    picks: BTreeSet<Pick>,
}

/// The chains and sets a family's table should hold after a full sync.
pub(super) type Desired = (BTreeSet<String>, BTreeSet<String>);

impl Family {
    pub fn new(ctx: Context) -> Family {
        Family {
            table: Table::new(ctx.family),
            ctx,
            programmed: HashMap::new(),
            hairpin_refs: HashMap::new(),
            picks: BTreeSet::new(),
        }
    }

    /// Renders every service and writes the whole table's structure to
    /// `before` and its elements to `batch`.
    pub fn plan_full(
        &self,
        all: &BTreeMap<ServiceKey, ServiceState>,
        before: &mut Vec<String>,
        batch: &mut Batch,
    ) -> (Planned, Desired) {
        let empty = Rendered::default();
        let mut programmed = HashMap::with_capacity(all.len());
        for (key, state) in all {
            programmed.insert(key.clone(), render_service(&self.ctx, state));
        }
        let pairs: Vec<(&Rendered, &Rendered)> = programmed.values().map(|r| (&empty, r)).collect();
        let (counts, add, _) = hairpin_delta(&HashMap::new(), &pairs);
        drop(pairs);
        let picks: BTreeSet<Pick> = programmed
            .values()
            .flat_map(|r| r.picks.iter().copied())
            .collect();
        let picks_list: Vec<Pick> = picks.iter().copied().collect();
        before.extend(full_before(
            &self.table,
            programmed.values(),
            &picks_list,
            self.ctx.cluster_cidr,
        ));
        write_full_elements(&self.table, programmed.values(), &add, batch);
        let mut chains: BTreeSet<String> = FIXED_CHAINS.iter().map(|c| c.to_string()).collect();
        chains.extend(picks.iter().map(Pick::chain));
        let mut sets: BTreeSet<String> = FIXED_SETS.iter().map(|s| s.to_string()).collect();
        for r in programmed.values() {
            chains.extend(r.chains.keys().cloned());
            sets.extend(r.sets.keys().cloned());
        }
        let planned = Planned {
            programmed,
            hairpin_counts: counts,
            picks,
        };
        (planned, (chains, sets))
    }

    /// Renders the changed services and writes what differs from what
    /// they programmed to the three steps.
    pub fn plan_partial(
        &self,
        changes: &[(ServiceKey, ServiceState, ServiceState)],
        before: &mut Vec<String>,
        batch: &mut Batch,
        after: &mut Vec<String>,
    ) -> Planned {
        let empty = Rendered::default();
        let mut txn = Transaction::default();
        let mut programmed = HashMap::new();
        let mut picks = self.picks.clone();
        for (key, _, current) in changes {
            let r = render_service(&self.ctx, current);
            for p in &r.picks {
                if picks.insert(*p) {
                    txn.ensure_pick(&self.table, p, self.ctx.cluster_cidr);
                }
            }
            txn.diff(&self.table, self.programmed.get(key).unwrap_or(&empty), &r);
            programmed.insert(key.clone(), r);
        }
        let pairs: Vec<(&Rendered, &Rendered)> = programmed
            .iter()
            .map(|(k, r)| (self.programmed.get(k).unwrap_or(&empty), r))
            .collect();
        let (counts, add, del) = hairpin_delta(&self.hairpin_refs, &pairs);
        txn.hairpin(&add, &del);
        before.extend(txn.before());
        txn.elements.write(&self.table, batch);
        after.extend(txn.after());
        Planned {
            programmed,
            hairpin_counts: counts,
            picks,
        }
    }

    /// Takes what an applied sync programmed as the family's state.
    pub fn applied(&mut self, full: bool, planned: Planned) {
        self.picks = planned.picks;
        if full {
            self.programmed = planned.programmed;
            self.hairpin_refs = planned.hairpin_counts;
            return;
        }
        for (ip, n) in planned.hairpin_counts {
            if n == 0 {
                self.hairpin_refs.remove(&ip);
            } else {
                self.hairpin_refs.insert(ip, n);
            }
        }
        for (key, r) in planned.programmed {
            if r.is_empty() {
                self.programmed.remove(&key);
            } else {
                self.programmed.insert(key, r);
            }
        }
    }
}
