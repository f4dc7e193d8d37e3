//! Garbage collection over the kinds this control plane watches, with the
//! three propagation policies: background (a dependent whose owners are all
//! gone is deleted), foreground (dependents of an owner carrying the
//! `foregroundDeletion` finalizer are deleted, and the finalizer removed
//! once no dependent blocks) and orphan (the owner's references are cut
//! from its dependents, then the `orphan` finalizer removed). `plan` is a
//! pure function over one snapshot; `apply` never deletes a dependent
//! whose owner it has not confirmed gone with a live GET, since the
//! dependent may simply be newer than this process's view of its owner.
//! An index: `plan` decides, `apply` acts.

mod apply;
mod plan;
#[cfg(test)]
mod tests;

pub use apply::pass;
pub use capstan_control_contract::owner_kinds::{
    tracks_owner, Kind, DAEMON_SET, DEPLOYMENT, ENDPOINT_SLICE, OWNERS, POD,
    REPLICATION_CONTROLLER, REPLICA_SET, SERVICE,
};
pub use plan::{plan, Action, Node};
