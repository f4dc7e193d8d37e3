//! DaemonSets: exactly one pod per eligible node (nodeSelector, required
//! node affinity, tolerated taints), none elsewhere; pods of an older
//! template replaced as kube-controller-manager rolls them (maxUnavailable
//! at a time, or with maxSurge a new pod first and the old one deleted
//! once the new one is available), and the status `kubectl rollout status`
//! reads. Pods are bound to their node directly (spec.nodeName), as
//! DaemonSets did before they went through the scheduler; a node's own
//! readiness taints are tolerated, as Kubernetes adds those tolerations to
//! every daemon pod. An index: pod (one node's pod and the pod facts),
//! plan (pure), expectations (own writes not yet seen), apply (calls).

mod apply;
mod expectations;
mod plan;
mod pod;
#[cfg(test)]
mod tests;

pub use apply::apply;
pub use expectations::Expectations;
pub use plan::{plan, DsPlan};
pub use pod::{daemon_pod, eligible, template_hash, GENERATION_LABEL, HASH_LABEL};
