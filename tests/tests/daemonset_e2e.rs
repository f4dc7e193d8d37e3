//! Capstan installed as users install it, in the lab, with real kubectl
//! against capstan-control: the nodes run only the kubelet, the network
//! comes from `kubectl apply -k deploy/kubernetes` with the image that
//! `deploy/image/build.sh` built. One agent pod per node; the seed NodePort
//! answers from outside; `kubectl rollout restart` keeps an established
//! cross-node TCP connection; a malformed ConfigMap fails the agent with one
//! log line and leaves the network alone; a node added later gets its agent
//! and pod network; deleting the DaemonSet leaves pods reachable. The
//! trials run in this order on one shared cluster (each builds on the last).

#[path = "daemonset_e2e/agents.rs"]
mod agents;
#[path = "daemonset_e2e/bad_config.rs"]
mod bad_config;
#[path = "daemonset_e2e/nodes.rs"]
mod nodes;
#[path = "daemonset_e2e/suite.rs"]
mod suite;
#[path = "daemonset_e2e/support.rs"]
mod support;
#[path = "daemonset_e2e/traffic.rs"]
mod traffic;

use capstan_lab::suite::{run, Spec, TestFn};
use capstan_lab::Lab;

const TOOLS: &[&str] = &[
    "ip",
    "etcd",
    "containerd",
    "runc",
    "ctr",
    "kubectl",
    "curl",
    "nft",
];

fn main() {
    let tests: &[(&str, TestFn<suite::Suite>)] = &[
        (
            "one_running_agent_pod_per_node",
            agents::one_agent_pod_per_node,
        ),
        (
            "manifests_pass_server_dry_run_and_strict_validation",
            agents::manifests_pass_dry_run,
        ),
        (
            "seed_node_port_answers_from_outside",
            traffic::seed_example_answers_from_outside,
        ),
        (
            "rollout_restart_keeps_a_cross_node_tcp_connection",
            traffic::rollout_restart_keeps_connections,
        ),
        (
            "malformed_net_conf_fails_the_agent_with_one_line_and_leaves_the_network",
            bad_config::malformed_net_conf_fails_with_one_line_and_leaves_the_network,
        ),
        (
            "a_node_added_later_gets_its_agent_and_pod_network",
            nodes::a_node_added_later_gets_its_agent_and_pod_network,
        ),
        (
            "deleting_the_daemonset_leaves_pods_reachable",
            traffic::deleting_the_daemonset_leaves_pods_reachable,
        ),
    ];
    run(
        &Spec {
            name: "daemonset_e2e",
            tools: TOOLS,
            serial: true,
        },
        Lab::builder().nodes(2).etcd(true).containerd(true),
        suite::Suite::setup,
        tests,
    );
}
