//! The overlay component in the lab: 3 nodes (network namespaces on one
//! underlay bridge), real etcd, one `capstan-agent --components overlay` per
//! node, dual-stack pods made with the `capstan-cni` plugin (the network
//! config has an `IPv6Network`, so IPv4 is proven in dual-stack mode here and
//! alone in the backends and kube suites). One lab is shared by the
//! whole suite (harness = false); tests run in order because later ones
//! reuse the agents and pods the earlier ones checked.
//! The fixture is `overlay_lab/suite.rs`; tests by theme live in the other
//! `overlay_lab/` files; the trial list below is the order they run in.

use std::sync::Arc;

use libtest_mimic::{Arguments, Failed, Trial};

mod common;
#[path = "overlay_lab/errors.rs"]
mod errors;
#[path = "overlay_lab/mesh.rs"]
mod mesh;
#[path = "overlay_lab/metrics.rs"]
mod metrics;
#[path = "overlay_lab/outages.rs"]
mod outages;
#[path = "overlay_lab/repair.rs"]
mod repair;
#[path = "overlay_lab/suite.rs"]
mod suite;

use errors::*;
use mesh::*;
use metrics::*;
use outages::*;
use repair::*;
use suite::Suite;

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
        t(
            "keys_in_documented_layout_and_distinct_subnets",
            keys_and_subnets,
        ),
        t("subnet_file_and_vxlan_device", subnet_file_and_device),
        t(
            "pods_reach_each_other_tcp_udp_both_directions",
            pods_reach_each_other,
        ),
        t(
            "dual_stack_pods_reach_each_other_over_ipv6",
            pods_reach_each_other_v6,
        ),
        t(
            "deleted_kernel_entries_are_restored_from_netlink_events",
            drift_is_repaired,
        ),
        t("device_of_another_vni_is_removed", stale_vni_device_removed),
        t("masquerade_lives_in_its_own_table", masquerade_table),
        t("agent_restart_loses_no_packet", restart_loses_nothing),
        t(
            "deleted_lease_is_removed_on_peers_within_2s",
            deleted_lease_removed,
        ),
        t(
            "etcd_outage_loses_no_packet_and_lease_is_renewed",
            etcd_outage,
        ),
        t("metrics_endpoint_shows_overlay_metrics", metrics_endpoint),
        t("malformed_config_is_a_clear_error", malformed_config),
        t("exhausted_network_is_a_clear_error", exhausted_network),
        t(
            "concurrent_acquire_gets_distinct_subnets",
            concurrent_acquire,
        ),
        t(
            "watch_recovers_from_compaction",
            watch_recovers_from_compaction,
        ),
    ];
    let conclusion = libtest_mimic::run(&args, trials);
    // Stop agents before the lab goes.
    if let Ok(mut a) = suite.agents.lock() {
        a.clear();
    }
    drop(suite);
    conclusion.exit();
}
