//! The end-to-end check, one shared lab: real etcd, capstan-control,
//! two nodes each with containerd and `capstan-agent --components
//! overlay,kubelet,proxy`, driven by kubectl. The seed example (NodePort
//! Service + ReplicationController serving HTTP with a liveness probe)
//! answers from the underlay; Nodes carry the overlay's podCIDR and
//! NetworkUnavailable=False; a killed container restarts with
//! restartCount 1, a second kill waits out the CrashLoopBackOff; a
//! failing liveness probe restarts its container; `kubectl logs -f` streams
//! what a container prints after it started and `--previous` shows the
//! attempt before a restart; an image pulls from the lab's registry with an
//! imagePullSecret and a missing one ends in ImagePullBackOff; an agent
//! restart leaves containers untouched and a running ping loses nothing;
//! projected volumes, a pod calling the API with its service-account token,
//! the Service env vars and a replaced token seen inside the container.
//! The fixture is `kubelet_e2e/suite.rs` (on `kube_suite`, shared with
//! kubelet_api); tests by feature live in the other `kubelet_e2e/` files.

use std::sync::Arc;

use libtest_mimic::Arguments;

#[path = "kubelet_e2e/agent_restart.rs"]
mod agent_restart;
#[path = "kubelet_e2e/identity.rs"]
mod identity;
#[path = "kubelet_e2e/images.rs"]
mod images;
mod kube_suite;
#[path = "kubelet_e2e/logs.rs"]
mod logs;
#[path = "kubelet_e2e/nodes.rs"]
mod nodes;
#[path = "kubelet_e2e/readiness.rs"]
mod readiness;
#[path = "kubelet_e2e/restarts.rs"]
mod restarts;
#[path = "kubelet_e2e/seed.rs"]
mod seed;
#[path = "kubelet_e2e/suite.rs"]
mod suite;
#[path = "kubelet_e2e/support.rs"]
mod support;

use agent_restart::*;
use identity::*;
use images::*;
use logs::*;
use nodes::*;
use readiness::*;
use restarts::*;
use seed::*;

fn main() {
    let args = Arguments::from_args();
    let Some(suite) = suite::Suite::start() else {
        return;
    };
    let cases: Vec<kube_suite::Case<suite::Suite>> = vec![
        ("nodes_ready_with_overlay_pod_cidr", nodes_ready),
        ("seed_example_answers_on_the_node_port", seed_example),
        (
            "killed_container_restarts_once_then_backs_off",
            killed_container_restarts,
        ),
        (
            "failing_liveness_probe_restarts_the_container",
            liveness_restarts,
        ),
        (
            "kubectl_logs_follow_streams_and_previous_shows_the_last_attempt",
            logs_follow,
        ),
        (
            "registry_pull_with_pull_secret_then_image_pull_backoff",
            registry_pulls,
        ),
        (
            "invalid_image_name_waits_with_kubelets_message_and_never_pulls",
            invalid_image_name,
        ),
        (
            "agent_restart_leaves_containers_and_traffic_alone",
            agent_restart,
        ),
        (
            "readiness_toggles_endpoints_then_delete_runs_prestop_and_sigterm",
            readiness_and_delete,
        ),
        (
            "projected_volume_of_all_four_kinds_has_the_files_modes_and_layout",
            projected_volume_all_kinds,
        ),
        (
            "pod_calls_the_api_with_its_token_and_has_the_service_env",
            pod_calls_the_api_with_its_token,
        ),
        (
            "replaced_token_is_visible_in_the_running_container",
            replaced_token_is_visible_in_the_container,
        ),
    ];
    kube_suite::run(args, Arc::new(suite), cases);
}
