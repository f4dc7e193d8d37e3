//! ReplicaSet and ReplicationController: keep `replicas` active pods made
//! from the template, adopting matching orphans and releasing owned pods
//! whose labels no longer match, and report counts in status. The plan is
//! a pure function; the loop applies it and remembers its own creates and
//! deletes until the watch shows them, so a pass never counts twice.
//! An index: owner (the two kinds), plan (pure), in_flight
//! (expectations), apply (calls).

mod apply;
mod in_flight;
mod owner;
mod plan;
#[cfg(test)]
mod tests;

pub use apply::{apply, pass};
pub use in_flight::InFlight;
pub use owner::{owner_ref, ReplicaOwner, ReplicaStatus};
pub use plan::{plan, pod_from_template, Plan};
