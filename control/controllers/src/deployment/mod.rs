//! Deployments: one ReplicaSet per pod template (named and labelled by the
//! template's hash), rolled from old to new within maxSurge/maxUnavailable
//! using the ReplicaSets' available counts, revisions recorded so that
//! `kubectl rollout undo` finds the previous template, and the status
//! `kubectl rollout status` reads. An index: plan (pure) and apply (calls).

mod apply;
mod history;
mod plan;
mod replica_sets;
mod rollout;
mod status;

pub use apply::apply;
pub use history::{template_hash, HASH_LABEL, REVISION};
pub use plan::{plan, DeployPlan};
pub use rollout::surge_and_unavailable;
