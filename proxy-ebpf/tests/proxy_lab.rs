//! The nftables proxy with real traffic: a 2-node lab (no etcd, no
//! containerd), pods as namespaces on a bridge per node, a proxy per node
//! syncing inside that node's namespace from Services and EndpointSlices
//! fed directly (the same objects a kube watcher delivers). One lab for the
//! whole suite (harness = false); tests run in order and build on the
//! services the earlier ones made. The fixture is `proxy_lab/suite.rs`, the
//! shared probes `proxy_lab/checks.rs`; tests by theme live in the other
//! `proxy_lab/` files (reachability, sync, affinity, terminating endpoints,
//! external destinations, traffic policies, protocols, UDP conntrack,
//! service changes); the trial list below is the order they run in.

use std::sync::Arc;

use libtest_mimic::{Arguments, Failed, Trial};

#[path = "proxy_lab/affinity.rs"]
mod affinity;
#[path = "proxy_lab/checks.rs"]
mod checks;
mod common;
#[path = "proxy_lab/external.rs"]
mod external;
#[path = "proxy_lab/internal_policy.rs"]
mod internal_policy;
#[path = "proxy_lab/protocols.rs"]
mod protocols;
#[path = "proxy_lab/reachability.rs"]
mod reachability;
#[path = "proxy_lab/service_changes.rs"]
mod service_changes;
#[path = "proxy_lab/suite.rs"]
mod suite;
#[path = "proxy_lab/sync.rs"]
mod sync;
#[path = "proxy_lab/terminating.rs"]
mod terminating;
#[path = "proxy_lab/udp_conntrack.rs"]
mod udp_conntrack;

use affinity::*;
use external::*;
use internal_policy::*;
use protocols::*;
use reachability::*;
use service_changes::*;
use suite::Suite;
use sync::*;
use terminating::*;
use udp_conntrack::*;

fn main() {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    let Some(suite) = Suite::start() else {
        return;
    };
    let suite = Arc::new(suite);
    let t = |name: &'static str, f: fn(&Suite) -> Result<(), Failed>| {
        let s = suite.clone();
        Trial::test(name, move || f(&s))
    };
    let trials = vec![
        t("cluster_ip_from_same_node_and_other_node", cluster_ip),
        t(
            "node_port_from_underlay_on_every_node_and_from_the_node",
            node_port,
        ),
        t(
            "no_endpoints_rejects_fast_tcp_and_udp",
            no_endpoints_rejects,
        ),
        t(
            "partial_sync_touches_only_the_changed_service",
            partial_sync,
        ),
        t("hairpin_pod_reaches_itself_through_its_service", hairpin),
        t("session_affinity_sticks_and_expires", affinity),
        t(
            "external_traffic_policy_local_keeps_client_ip_and_health_check",
            external_local,
        ),
        t("udp_follows_an_endpoint_change", udp_endpoint_change),
        t("ipv6_cluster_ip_and_node_port", ipv6),
        t("terminating_endpoints_only_when_nothing_ready", terminating),
        t(
            "external_ips_reach_endpoints_from_a_client_routed_via_either_node",
            external_ips,
        ),
        t(
            "load_balancer_ips_reach_endpoints_and_local_keeps_client_ip",
            load_balancer,
        ),
        t(
            "local_policy_falls_back_to_a_terminating_local_endpoint",
            local_terminating,
        ),
        t(
            "internal_traffic_policy_local_uses_only_node_local_endpoints",
            internal_local,
        ),
        t(
            "named_target_ports_resolve_per_slice_and_per_port",
            named_ports,
        ),
        t(
            "ipv6_external_ip_and_load_balancer_ip_with_local_policy",
            ipv6_external,
        ),
        t(
            "ipv6_udp_endpoint_change_and_reject_without_endpoints",
            ipv6_udp_and_reject,
        ),
        t("sctp_cluster_ip_and_node_port_with_raw_packets", sctp),
        t(
            "udp_conntrack_entries_of_a_removed_endpoint_are_deleted",
            udp_conntrack_cleared,
        ),
        t(
            "udp_flows_from_before_a_service_existed_are_cleared",
            udp_before_service,
        ),
        t(
            "affinity_on_and_off_then_delete_leaves_nothing_behind",
            affinity_flip,
        ),
        t("restart_keeps_connections_and_rules_until_resync", restart),
        t(
            "table_altered_by_someone_else_forces_full_resync",
            tampering,
        ),
    ];
    let conclusion = libtest_mimic::run(&args, trials);
    // Debugging aid: keep the lab (namespaces, tables) until Enter is pressed.
    if std::env::var("PROXY_LAB_HOLD").is_ok() {
        eprintln!("holding lab {}; press enter", suite.lab.prefix());
        let _ = std::io::stdin().read_line(&mut String::new());
    }
    drop(suite);
    conclusion.exit();
}
