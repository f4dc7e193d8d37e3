//! The kubelet component in the lab: one node with its own containerd,
//! capstan-cni as the node's CNI plugin, static pods from a manifest
//! directory, and `capstan-agent --components kubelet`. One lab and one
//! agent are shared by the suite (harness = false); tests run in order.
//! The node-pressure test adds etcd, capstan-control and a second agent
//! (API pods, its own directories) to the same node for its duration.
//! The fixture is `kubelet_lab/suite.rs`; tests by feature live in the
//! other `kubelet_lab/` files; the trial list below is the order they run in.

use std::sync::Arc;

use libtest_mimic::Arguments;

#[path = "kubelet_lab/admission.rs"]
mod admission;
#[path = "kubelet_lab/cleanup.rs"]
mod cleanup;
#[path = "kubelet_lab/disk_pid.rs"]
mod disk_pid;
mod kube_suite;
#[path = "kubelet_lab/manifests.rs"]
mod manifests;
#[path = "kubelet_lab/memory_pressure.rs"]
mod memory_pressure;
#[path = "kubelet_lab/pressure.rs"]
mod pressure;
#[path = "kubelet_lab/registry.rs"]
mod registry;
#[path = "kubelet_lab/restarts.rs"]
mod restarts;
#[path = "kubelet_lab/security.rs"]
mod security;
#[path = "kubelet_lab/socket_proxy.rs"]
mod socket_proxy;
#[path = "kubelet_lab/static_pods.rs"]
mod static_pods;
#[path = "kubelet_lab/suite.rs"]
mod suite;
#[path = "kubelet_lab/support.rs"]
mod support;

use admission::*;
use cleanup::*;
use disk_pid::*;
use memory_pressure::*;
use registry::*;
use restarts::*;
use security::*;
use static_pods::*;

fn main() {
    let args = Arguments::from_args();
    let Some(suite) = suite::Suite::start() else {
        return;
    };
    let cases: Vec<kube_suite::Case<suite::Suite>> = vec![
        ("static_pod_runs_with_ip_and_serves_http", static_pod_runs),
        (
            "init_containers_env_volumes_and_cri_logs",
            init_env_volumes_logs,
        ),
        (
            "killed_container_restarts_then_crash_loop_backoff",
            restarts_and_backoff,
        ),
        ("liveness_failure_restarts_container", liveness_restarts),
        ("readiness_flips_ready_condition", readiness_flips),
        ("restart_policy_never_and_onfailure", restart_policies),
        (
            "removed_manifest_prestop_sigterm_and_full_cleanup",
            graceful_delete,
        ),
        (
            "post_start_hook_gates_startup_probe",
            post_start_and_startup,
        ),
        (
            "security_context_and_host_network",
            security_and_host_network,
        ),
        (
            "ten_pods_at_once_create_to_running_latency",
            ten_pods_latency,
        ),
        (
            "agent_kill_9_restart_adopts_and_sweeps_orphans",
            adoption_after_restart,
        ),
        (
            "registry_pull_with_pull_secret_then_backoff_for_bad_references",
            registry_pulls,
        ),
        (
            "memory_pressure_evicts_lowest_priority_pod_with_event_and_conditions",
            memory_pressure_eviction,
        ),
        (
            "admission_rejects_out_of_cpu_node_affinity_and_best_effort_under_memory_pressure",
            admission_rejections,
        ),
        (
            "disk_and_pid_pressure_evict_the_writer_then_the_forker",
            disk_and_pid_eviction,
        ),
    ];
    // The suite stops its agent, then its lab, before the exit.
    kube_suite::run(args, Arc::new(suite), cases);
}
