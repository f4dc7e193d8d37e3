//! The scheduler and controllers end to end: one lab (real etcd,
//! capstan-control with every controller, a short node-monitor grace
//! period) and three simulated nodes (`capstan_lab::simnode`: Ready nodes
//! that renew their Leases and "run" the pods bound to them), driven by the
//! real kubectl. Tests run one at a time, each in its own namespace; this
//! file only lists them, `controllers_e2e/` holds them by feature.

use capstan_lab::suite::{self, Spec, TestFn};
use capstan_lab::Lab;

#[path = "controllers_e2e/daemonset.rs"]
mod daemonset;
#[path = "controllers_e2e/delete.rs"]
mod delete;
#[path = "controllers_e2e/deployment.rs"]
mod deployment;
#[path = "controllers_e2e/endpoints.rs"]
mod endpoints;
#[path = "controllers_e2e/fixture.rs"]
mod fixture;
#[path = "controllers_e2e/in_cluster.rs"]
mod in_cluster;
#[path = "controllers_e2e/namespace.rs"]
mod namespace;
#[path = "controllers_e2e/node_lifecycle.rs"]
mod node_lifecycle;
#[path = "controllers_e2e/objects.rs"]
mod objects;
#[path = "controllers_e2e/scheduling.rs"]
mod scheduling;

use fixture::Suite;

const SPEC: Spec = Spec {
    name: "controllers_e2e",
    tools: &["ip", "etcd", "kubectl"],
    serial: true,
};

const TESTS: &[(&str, TestFn<Suite>)] = &[
    (
        "deployment_scales_0_50_5",
        deployment::deployment_scales_0_50_5,
    ),
    (
        "rolling_update_keeps_desired_ready",
        deployment::rolling_update_keeps_desired_ready,
    ),
    (
        "daemonset_follows_nodes",
        daemonset::daemonset_follows_nodes,
    ),
    (
        "endpoints_follow_readiness",
        endpoints::endpoints_follow_readiness,
    ),
    (
        "silent_node_goes_unknown_and_pods_move",
        node_lifecycle::silent_node_goes_unknown_and_pods_move,
    ),
    ("cascade_delete", delete::cascade_delete),
    (
        "foreground_delete_waits_for_dependents",
        delete::foreground_delete_waits_for_dependents,
    ),
    (
        "orphan_delete_keeps_dependents",
        delete::orphan_delete_keeps_dependents,
    ),
    (
        "namespace_terminates_then_goes",
        namespace::namespace_terminates_then_goes,
    ),
    (
        "crash_mid_rollout_finishes_without_duplicates",
        deployment::crash_mid_rollout_finishes_without_duplicates,
    ),
    (
        "unschedulable_pod_explains_why",
        scheduling::unschedulable_pod_explains_why,
    ),
    (
        "namespaces_get_default_account_and_root_ca",
        in_cluster::namespaces_get_default_account_and_root_ca,
    ),
    (
        "pods_get_the_api_access_volume",
        in_cluster::pods_get_the_api_access_volume,
    ),
    (
        "kubernetes_service_points_at_the_api_server",
        in_cluster::kubernetes_service_points_at_the_api_server,
    ),
    (
        "daemonset_rollout_restart_replaces_every_pod",
        daemonset::daemonset_rollout_restart_replaces_every_pod,
    ),
    (
        "daemonset_max_surge_keeps_every_node_served",
        daemonset::daemonset_max_surge_keeps_every_node_served,
    ),
];

fn main() {
    suite::run(
        &SPEC,
        Lab::builder().nodes(0).etcd(true),
        Suite::start,
        TESTS,
    );
}
