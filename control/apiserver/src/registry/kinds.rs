//! Which strategy each kind has: the one place a kind is looked up, as
//! kube-apiserver wires each resource's storage with its strategy. Kinds
//! not listed have no rules of their own.

use super::config_map::ConfigMapStrategy;
use super::namespace::NamespaceStrategy;
use super::pod::PodStrategy;
use super::rbac::RbacStrategy;
use super::secret::SecretStrategy;
use super::service::ServiceStrategy;
use super::strategy::{Generic, Strategy};
use super::workload::WorkloadStrategy;

static STRATEGIES: &[(&str, &dyn Strategy)] = &[
    ("Pod", &PodStrategy),
    ("Service", &ServiceStrategy),
    ("Namespace", &NamespaceStrategy),
    ("ConfigMap", &ConfigMapStrategy),
    ("Secret", &SecretStrategy),
    ("Deployment", &WorkloadStrategy::DEPLOYMENT),
    ("ReplicaSet", &WorkloadStrategy::REPLICA_SET),
    ("DaemonSet", &WorkloadStrategy::DAEMON_SET),
    (
        "ReplicationController",
        &WorkloadStrategy::REPLICATION_CONTROLLER,
    ),
    ("Role", &RbacStrategy::ROLE),
    ("ClusterRole", &RbacStrategy::CLUSTER_ROLE),
    ("RoleBinding", &RbacStrategy::ROLE_BINDING),
    ("ClusterRoleBinding", &RbacStrategy::CLUSTER_ROLE_BINDING),
];

/// The strategy of `kind` (a kind in the resource table).
pub fn strategy_for(kind: &str) -> &'static dyn Strategy {
    STRATEGIES
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(&Generic, |(_, s)| *s)
}
