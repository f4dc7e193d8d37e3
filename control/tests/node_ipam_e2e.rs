//! Node IPAM end to end: capstan-control with a dual-stack
//! `--cluster-cidr` on the lab's etcd, nodes registered with kubectl as
//! kubelets do (no pod CIDRs), and what `kubectl get node` shows: both
//! families, distinct per node, an IPv4-only node left as it is, a deleted
//! node's CIDRs handed out again, and a crashed-and-restarted server
//! rebuilding its allocations from the nodes.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use capstan_lab::control::ControlPlane;
use capstan_lab::{privileged, Lab};
use libtest_mimic::{Arguments, Failed, Trial};

struct Suite {
    _lab: Lab,
    /// Locked only to build a command or to crash and restart the server.
    cp: Mutex<ControlPlane>,
}

type TestFn = fn(&Suite) -> Result<(), Failed>;

fn main() {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    if !privileged::require("node_ipam_e2e", &["ip", "etcd", "kubectl"]) {
        return;
    }
    let lab = Lab::builder()
        .nodes(0)
        .etcd(true)
        .build()
        .expect("build lab");
    let cp = ControlPlane::start_with(
        &lab,
        &lab.etcd_endpoint(),
        &[
            "--allocate-node-cidrs".into(),
            "--cluster-cidr=10.244.0.0/16,fd00:10:244::/56".into(),
            "--scheduler=false".into(),
            "--controllers=-nodelifecycle".into(),
        ],
    )
    .unwrap_or_else(|e| panic!("start capstan-control: {e}"));
    let suite = std::sync::Arc::new(Suite {
        _lab: lab,
        cp: Mutex::new(cp),
    });
    // In order: each builds on the nodes the previous ones left.
    let tests: &[(&str, TestFn)] = &[
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
    let trials = tests
        .iter()
        .map(|(name, f)| {
            let s = suite.clone();
            let f = *f;
            Trial::test(*name, move || f(&s))
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    if conclusion.has_failed() {
        if let Ok(cp) = suite.cp.lock() {
            let log = std::fs::read_to_string(cp.log()).unwrap_or_default();
            eprintln!("capstan-control log:\n{log}");
        }
    }
    drop(suite);
    conclusion.exit();
}

fn kubectl(s: &Suite, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    s.cp.lock()
        .map_err(|e| e.to_string())?
        .kubectl_run(args, stdin)
}

/// Registers a node as a kubelet does: no pod CIDRs, unless given.
fn register(s: &Suite, name: &str, pod_cidr: Option<&str>) -> Result<(), String> {
    let spec = pod_cidr
        .map(|c| format!("spec:\n  podCIDR: {c}\n  podCIDRs: [{c}]\n"))
        .unwrap_or_default();
    let manifest = format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n{spec}");
    kubectl(s, &["create", "-f", "-"], Some(&manifest)).map(|_| ())
}

/// (podCIDR, podCIDRs) as `kubectl get node -o jsonpath` shows them.
fn cidrs(s: &Suite, name: &str) -> Result<(String, Vec<String>), String> {
    let out = kubectl(
        s,
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
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (one, all) = cidrs(s, name)?;
        if all.len() == 2 {
            let ok = one == all[0]
                && all[0].starts_with("10.244.")
                && all[0].ends_with("/24")
                && all[1].starts_with("fd00:10:244:")
                && all[1].ends_with("/64");
            return if ok {
                Ok(all)
            } else {
                Err(format!("node {name}: podCIDR {one:?}, podCIDRs {all:?}").into())
            };
        }
        if Instant::now() > deadline {
            return Err(format!("node {name} got no dual-stack pod CIDRs: {all:?}").into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
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
    let log_path = s.cp.lock().map_err(|e| e.to_string())?.log();
    let log = std::fs::read_to_string(log_path).map_err(|e| e.to_string())?;
    let said = log
        .lines()
        .filter(|l| l.contains("ipam-old") && l.contains("immutable"))
        .count();
    check(said == 1, format!("ipam-old logged {said} times"))
}

fn reuse_after_delete(s: &Suite) -> Result<(), Failed> {
    let (_, a) = cidrs(s, "ipam-a")?;
    kubectl(s, &["delete", "node", "ipam-a"], None)?;
    register(s, "ipam-e", None)?;
    let e = wait_dual(s, "ipam-e")?;
    check(e == a, format!("ipam-e got {e:?}, ipam-a had {a:?}"))?;
    all_distinct(s, &["ipam-b", "ipam-c", "ipam-d", "ipam-e", "ipam-old"]).map(|_| ())
}

fn rebuilt_after_restart(s: &Suite) -> Result<(), Failed> {
    let names = ["ipam-b", "ipam-c", "ipam-d", "ipam-e", "ipam-old"];
    let before = all_distinct(s, &names)?;
    s.cp.lock()
        .map_err(|e| e.to_string())?
        .crash_and_restart()
        .map_err(|e| e.to_string())?;
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
