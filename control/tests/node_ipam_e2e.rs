//! Node IPAM end to end: capstan-control with a dual-stack
//! `--cluster-cidr` on the lab's etcd, nodes registered with kubectl as
//! kubelets do (no pod CIDRs), and what `kubectl get node` shows: both
//! families, distinct per node, an IPv4-only node left as it is, a deleted
//! node's CIDRs handed out again, and a crashed-and-restarted server
//! rebuilding its allocations from the nodes.

use std::collections::BTreeSet;
use std::time::Duration;

use capstan_lab::suite::{self, ControlSuite, Spec, TestFn};
use capstan_lab::wait::wait_for;
use capstan_lab::Lab;
use libtest_mimic::Failed;

type Suite = ControlSuite;

const SPEC: Spec = Spec {
    name: "node_ipam_e2e",
    tools: &["ip", "etcd", "kubectl"],
    // In order: each builds on the nodes the previous ones left.
    serial: true,
};

const TESTS: &[(&str, TestFn<Suite>)] = &[
    ("a_registered_node_gets_both_pod_cidrs", both_families),
    ("an_ipv4_only_node_is_left_alone", ipv4_only_left_alone),
    (
        "a_deleted_nodes_cidrs_are_handed_out_again",
        reuse_after_delete,
    ),
    (
        "a_restarted_server_rebuilds_from_the_nodes",
        rebuilt_after_restart,
    ),
];

fn main() {
    let flags = [
        "--allocate-node-cidrs".into(),
        "--cluster-cidr=10.244.0.0/16,fd00:10:244::/56".into(),
        "--scheduler=false".into(),
        "--controllers=-nodelifecycle".into(),
    ];
    suite::run(
        &SPEC,
        Lab::builder().nodes(0).etcd(true),
        |lab| ControlSuite::start(lab, &flags),
        TESTS,
    );
}

/// Registers a node as a kubelet does: no pod CIDRs, unless given.
fn register(s: &Suite, name: &str, pod_cidr: Option<&str>) -> Result<(), String> {
    let spec = pod_cidr
        .map(|c| format!("spec:\n  podCIDR: {c}\n  podCIDRs: [{c}]\n"))
        .unwrap_or_default();
    let manifest = format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n{spec}");
    s.kubectl(&["create", "-f", "-"], Some(&manifest))
        .map(|_| ())
}

/// (podCIDR, podCIDRs) as `kubectl get node -o jsonpath` shows them.
fn cidrs(s: &Suite, name: &str) -> Result<(String, Vec<String>), String> {
    let out = s.kubectl(
        &[
            "get",
            "node",
            name,
            "-o",
            r#"jsonpath={.spec.podCIDR}{"|"}{.spec.podCIDRs[*]}"#,
        ],
        None,
    )?;
    let (one, all) = out.split_once('|').unwrap_or((&out, ""));
    Ok((
        one.to_string(),
        all.split_whitespace().map(str::to_string).collect(),
    ))
}

/// Waits for a node's two pod CIDRs (IPv4 first, as --cluster-cidr).
fn wait_dual(s: &Suite, name: &str) -> Result<Vec<String>, Failed> {
    let mut last = Vec::new();
    let (one, all) = wait_for(
        &format!("node {name}'s dual-stack pod CIDRs"),
        Duration::from_secs(15),
        || match cidrs(s, name) {
            Ok((_, all)) if all.len() != 2 => {
                last = all;
                None
            }
            got => Some(got),
        },
    )
    .map_err(|e| format!("{e}: node {name} got no dual-stack pod CIDRs: {last:?}"))??;
    let ok = one == all[0]
        && all[0].starts_with("10.244.")
        && all[0].ends_with("/24")
        && all[1].starts_with("fd00:10:244:")
        && all[1].ends_with("/64");
    check(
        ok,
        format!("node {name}: podCIDR {one:?}, podCIDRs {all:?}"),
    )?;
    Ok(all)
}

fn check(ok: bool, what: String) -> Result<(), Failed> {
    if ok {
        Ok(())
    } else {
        Err(what.into())
    }
}

/// Every node's podCIDRs: all distinct.
fn all_distinct(s: &Suite, names: &[&str]) -> Result<Vec<Vec<String>>, Failed> {
    let mut every = Vec::new();
    let mut seen = BTreeSet::new();
    for n in names {
        let (_, all) = cidrs(s, n)?;
        for c in &all {
            check(
                seen.insert(c.clone()),
                format!("{c} given twice: {every:?}"),
            )?;
        }
        every.push(all);
    }
    Ok(every)
}

fn both_families(s: &Suite) -> Result<(), Failed> {
    for n in ["ipam-a", "ipam-b", "ipam-c"] {
        register(s, n, None)?;
    }
    let a = wait_dual(s, "ipam-a")?;
    // The lowest free CIDRs of each family, in node name order.
    check(
        a == ["10.244.0.0/24", "fd00:10:244::/64"],
        format!("ipam-a: {a:?}"),
    )?;
    wait_dual(s, "ipam-b")?;
    wait_dual(s, "ipam-c")?;
    all_distinct(s, &["ipam-a", "ipam-b", "ipam-c"]).map(|_| ())
}

fn ipv4_only_left_alone(s: &Suite) -> Result<(), Failed> {
    register(s, "ipam-old", Some("10.244.3.0/24"))?;
    // A node registered after it being served shows a pass saw both.
    register(s, "ipam-d", None)?;
    let d = wait_dual(s, "ipam-d")?;
    check(
        !d.contains(&"10.244.3.0/24".to_string()),
        format!("ipam-d got the IPv4-only node's CIDR: {d:?}"),
    )?;
    let (one, all) = cidrs(s, "ipam-old")?;
    check(
        one == "10.244.3.0/24" && all == ["10.244.3.0/24"],
        format!("ipam-old changed: {one:?} {all:?}"),
    )?;
    // Said once, however many passes ran since.
    std::thread::sleep(Duration::from_millis(500));
    let log_path = s.cp().log();
    let log = std::fs::read_to_string(log_path).map_err(|e| e.to_string())?;
    let said = log
        .lines()
        .filter(|l| l.contains("ipam-old") && l.contains("immutable"))
        .count();
    check(said == 1, format!("ipam-old logged {said} times"))
}

fn reuse_after_delete(s: &Suite) -> Result<(), Failed> {
    let (_, a) = cidrs(s, "ipam-a")?;
    s.kubectl(&["delete", "node", "ipam-a"], None)?;
    register(s, "ipam-e", None)?;
    let e = wait_dual(s, "ipam-e")?;
    check(e == a, format!("ipam-e got {e:?}, ipam-a had {a:?}"))?;
    all_distinct(s, &["ipam-b", "ipam-c", "ipam-d", "ipam-e", "ipam-old"]).map(|_| ())
}

fn rebuilt_after_restart(s: &Suite) -> Result<(), Failed> {
    let names = ["ipam-b", "ipam-c", "ipam-d", "ipam-e", "ipam-old"];
    let before = all_distinct(s, &names)?;
    s.cp().crash_and_restart().map_err(|e| e.to_string())?;
    register(s, "ipam-f", None)?;
    let f = wait_dual(s, "ipam-f")?;
    let after = all_distinct(s, &names)?;
    check(
        before == after,
        format!("CIDRs changed: {before:?} -> {after:?}"),
    )?;
    let mut with_f = names.to_vec();
    with_f.push("ipam-f");
    all_distinct(s, &with_f)?;
    // The lowest free of each family (IPv4 .3 is the IPv4-only node's).
    check(
        f == ["10.244.5.0/24", "fd00:10:244:4::/64"],
        format!("ipam-f got {f:?}"),
    )
}
