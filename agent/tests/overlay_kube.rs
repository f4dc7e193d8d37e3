//! The overlay with the kube subnet manager, in a cluster whose etcd the
//! agents never see: capstan-control allocates node pod CIDRs (node IPAM),
//! each agent takes its subnet from its Node's `spec.podCIDR`, publishes
//! its VTEP as Node annotations with its own node credentials, and meshes
//! with the other nodes found through the API. Pods on different nodes
//! then reach each other, and a node deleted from the API is unmeshed.
//!
//! The cluster is dual-stack: the net-conf has an `IPv6Network` and
//! capstan-control a dual-stack `--cluster-cidr`; the first `DUAL` nodes
//! register bare and get an IPv4 and an IPv6 `podCIDRs` entry from the
//! node IPAM, the last registers with an IPv4 pod CIDR only, which the IPAM
//! leaves alone (pod CIDRs are immutable): a single-stack node among
//! dual-stack ones. IPv6 pod traffic rides the same VXLAN device over the
//! IPv4 underlay, as in etcd mode.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use capstan_lab::control::ControlPlane;
use capstan_lab::daemon::Daemon;
use capstan_lab::{privileged, Lab};
use common::*;
use libtest_mimic::{Arguments, Failed, Trial};

const NODES: usize = 3;
/// Nodes `0..DUAL` are dual-stack; node `DUAL` registers IPv4-only.
const DUAL: usize = 2;
const NET_CONF: &str = r#"{"Network":"10.244.0.0/16","SubnetLen":24,"IPv6Network":"fd00:10:244::/56","Backend":{"Type":"vxlan","VNI":1}}"#;

/// The IPv4-only pod CIDR node `DUAL` registers with.
const SINGLE_CIDR: &str = "10.244.12.0/24";

struct Suite {
    lab: Lab,
    cp: ControlPlane,
    agents: Mutex<Vec<Daemon>>,
    pods: Vec<Pod>,
}

fn net_conf(lab: &Lab, i: usize) -> PathBuf {
    lab.node(i).dir().join("etc/net-conf.json")
}

fn spawn_kube_agent(lab: &Lab, cp: &ControlPlane, i: usize) -> Daemon {
    lab.node(i)
        .spawn(
            "overlay",
            &common::agent_bin(),
            &kube_agent_args(lab, cp, i, &net_conf(lab, i)),
        )
        .expect("spawn agent")
}

fn kube_agent_args(
    lab: &Lab,
    cp: &ControlPlane,
    i: usize,
    net_conf: &std::path::Path,
) -> Vec<String> {
    let n = lab.node(i);
    let args: Vec<String> = vec![
        "--node-name".into(),
        n.name().into(),
        "--components".into(),
        "overlay".into(),
        "--subnet-manager".into(),
        "kube".into(),
        "--kubeconfig".into(),
        cp.node_kubeconfig(n.name()).display().to_string(),
        "--net-conf-file".into(),
        net_conf.display().to_string(),
        "--subnet-file".into(),
        subnet_file(lab, i).display().to_string(),
        "--iface".into(),
        "eth0".into(),
        "--resync-interval".into(),
        "5".into(),
    ];
    args
}

fn main() {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    if !privileged::require("overlay_kube", &["ip", "bridge", "etcd", "kubectl", "nft"]) {
        return;
    }
    let cni = cni_bin();
    let lab = Lab::builder()
        .nodes(NODES)
        .etcd(true)
        .containerd(false)
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
    // The nodes register (here before any agent runs): the dual-stack ones
    // bare (the IPAM gives them both families), the last IPv4-only.
    for (i, n) in lab.nodes().iter().enumerate() {
        let spec = if i < DUAL {
            String::new()
        } else {
            format!("spec:\n  podCIDR: {SINGLE_CIDR}\n  podCIDRs: [{SINGLE_CIDR}]\n")
        };
        let manifest = format!(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: {}\n{spec}",
            n.name()
        );
        cp.kubectl_run(&["create", "-f", "-"], Some(&manifest))
            .expect("register node");
    }
    let agents: Vec<Daemon> = (0..NODES)
        .map(|i| {
            std::fs::write(net_conf(&lab, i), NET_CONF).expect("write net-conf");
            spawn_kube_agent(&lab, &cp, i)
        })
        .collect();
    for i in 0..NODES {
        wait_until(
            &format!("node {i} meshed through the API"),
            Duration::from_secs(30),
            || meshed(&lab, i),
        )
        .unwrap_or_else(|e| panic!("{e:?}\nagent log:\n{}", agent_log(&lab, i)));
    }
    let pods: Vec<Pod> = (0..NODES).map(|i| make_pod(&lab, &cni, i)).collect();
    for p in &pods {
        start_echo(p);
    }
    let suite = Arc::new(Suite {
        lab,
        cp,
        agents: Mutex::new(agents),
        pods,
    });
    let t = |name: &'static str, f: fn(&Suite) -> Result<(), Failed>| {
        let s = suite.clone();
        Trial::test(name, move || f(&s))
    };
    let trials = vec![
        t("subnets_are_the_nodes_pod_cidrs", subnets_are_pod_cidrs),
        t("vtep_published_as_node_annotations", vtep_annotations),
        t("pods_reach_each_other_across_nodes", pods_reach),
        t(
            "dual_stack_subnet_files_have_both_families",
            subnet_files_dual_stack,
        ),
        t("ipv6_vtep_published_as_node_annotation", vtep_v6_annotation),
        t("dual_stack_pods_reach_each_other_over_ipv6", pods_reach_v6),
        t("single_stack_node_among_dual_stack_ones", single_stack_node),
        t(
            "a_malformed_net_conf_stops_the_agent_and_leaves_the_node_alone",
            malformed_net_conf,
        ),
        t("a_deleted_node_is_unmeshed", deleted_node_unmeshed),
    ];
    let conclusion = libtest_mimic::run(&args, trials);
    if conclusion.has_failed() {
        for i in 0..NODES {
            eprintln!("agent {i} log:\n{}", agent_log(&suite.lab, i));
        }
        if std::env::var_os("CAPSTAN_DEBUG_PAUSE").is_some() {
            eprintln!("lab {} kept for 90 s", suite.lab.dir().display());
            std::thread::sleep(Duration::from_secs(90));
        }
    }
    if let Ok(mut a) = suite.agents.lock() {
        a.clear();
    }
    drop(suite);
    conclusion.exit();
}

fn node_field(s: &Suite, i: usize, jsonpath: &str) -> String {
    s.cp.kubectl_run(
        &[
            "get",
            "node",
            s.lab.node(i).name(),
            "-o",
            &format!("jsonpath={{{jsonpath}}}"),
        ],
        None,
    )
    .unwrap_or_default()
}

/// Every Node as JSON, by lab node index: one kubectl call (each costs
/// ~0.1 s) for all the checks of a test.
fn nodes_json(s: &Suite) -> Result<Vec<serde_json::Value>, Failed> {
    let out = s.cp.kubectl_run(&["get", "nodes", "-o", "json"], None)?;
    let list: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| format!("node list: {e}"))?;
    let items = list["items"].as_array().cloned().unwrap_or_default();
    Ok((0..NODES)
        .map(|i| {
            let name = s.lab.node(i).name().to_string();
            items
                .iter()
                .find(|n| n["metadata"]["name"] == name.as_str())
                .cloned()
                .unwrap_or_default()
        })
        .collect())
}

fn annotation(node: &serde_json::Value, key: &str) -> String {
    node["metadata"]["annotations"][key]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn pod_cidr(s: &Suite, i: usize) -> String {
    node_field(s, i, ".spec.podCIDR")
}

fn subnets_are_pod_cidrs(s: &Suite) -> Result<(), Failed> {
    let mut seen = Vec::new();
    for i in 0..NODES {
        let want = pod_cidr(s, i);
        let have = node_subnet(&s.lab, i)
            .map(|n| n.to_string())
            .unwrap_or_default();
        check(
            !want.is_empty() && want == have,
            format!("node {i}: subnet file {have:?}, podCIDR {want:?}"),
        )?;
        seen.push(want);
    }
    seen.dedup();
    check(
        seen.len() == NODES,
        format!("pod CIDRs not distinct: {seen:?}"),
    )
}

fn vtep_annotations(s: &Suite) -> Result<(), Failed> {
    for i in 0..NODES {
        let n = s.lab.node(i);
        let ip = s.cp.kubectl_run(
            &[
                "get",
                "node",
                n.name(),
                "-o",
                r"jsonpath={.metadata.annotations.capstan\.io/public-ip}",
            ],
            None,
        )?;
        check(
            ip == n.ip().to_string(),
            format!("node {i} public-ip annotation {ip:?}"),
        )?;
        let data = s.cp.kubectl_run(
            &[
                "get",
                "node",
                n.name(),
                "-o",
                r"jsonpath={.metadata.annotations.capstan\.io/backend-data}",
            ],
            None,
        )?;
        check(
            data.contains("VtepMAC"),
            format!("node {i} backend-data {data:?}"),
        )?;
    }
    Ok(())
}

fn pods_reach(s: &Suite) -> Result<(), Failed> {
    tcp_echo(&s.pods[0], s.pods[1].ip).map_err(|e| format!("tcp pod0->pod1: {e}"))?;
    tcp_echo(&s.pods[1], s.pods[0].ip).map_err(|e| format!("tcp pod1->pod0: {e}"))?;
    udp_echo(&s.pods[0], s.pods[1].ip).map_err(|e| format!("udp pod0->pod1: {e}"))?;
    Ok(())
}

/// The IPAM gave each dual-stack node both families (distinct ones), and
/// the subnet file carries both: the IPv4 and the IPv6 podCIDR.
fn subnet_files_dual_stack(s: &Suite) -> Result<(), Failed> {
    let nodes = nodes_json(s)?;
    let mut seen = std::collections::BTreeSet::new();
    for (i, node) in nodes.iter().enumerate().take(DUAL) {
        let want4 = node["spec"]["podCIDRs"][0].as_str().unwrap_or_default();
        let want6 = node["spec"]["podCIDRs"][1].as_str().unwrap_or_default();
        let have4 = node_subnet(&s.lab, i).map(|n| n.to_string());
        let have6 = node_subnet6(&s.lab, i).map(|n| n.to_string());
        let text = std::fs::read_to_string(subnet_file(&s.lab, i)).unwrap_or_default();
        check(
            want6.starts_with("fd00:10:244:")
                && seen.insert(want4)
                && seen.insert(want6)
                && have4.as_deref() == Some(want4)
                && have6.as_deref() == Some(want6)
                && text.contains("CAPSTAN_IPV6_NETWORK=fd00:10:244::/56"),
            format!("node {i}: podCIDRs {want4:?} {want6:?} (seen {seen:?}), subnet file:\n{text}"),
        )?;
    }
    Ok(())
}

/// The IPv6 VTEP is on the Node, and (one device for both families) it is
/// the IPv4 one.
fn vtep_v6_annotation(s: &Suite) -> Result<(), Failed> {
    let nodes = nodes_json(s)?;
    for (i, node) in nodes.iter().enumerate().take(DUAL) {
        let v6 = annotation(node, "capstan.io/backend-v6-data");
        let v4 = annotation(node, "capstan.io/backend-data");
        check(
            v6.contains("VtepMAC") && v6 == v4,
            format!("node {i}: backend-v6-data {v6:?}, backend-data {v4:?}"),
        )?;
    }
    Ok(())
}

/// Every node routes to the other's IPv6 subnet over the tunnel, and TCP
/// (and UDP) between pods on different nodes works over IPv6.
fn pods_reach_v6(s: &Suite) -> Result<(), Failed> {
    for i in 0..DUAL {
        let ns = s.lab.node(i).netns_name().to_string();
        for j in (0..DUAL).filter(|j| *j != i) {
            // Programmed in the same pass as the IPv4 entries the set-up
            // waited for; the deadline only bounds a failure.
            wait_until(
                &format!("node {i} has the v6 route and neighbour for node {j}"),
                Duration::from_secs(10),
                || has_peer6(&s.lab, &ns, j),
            )
            .map_err(|e| {
                format!(
                    "{e:?}; v6 routes: {}",
                    ip_in(&ns, &["-6", "route", "show", "proto", "67"])
                )
            })?;
        }
    }
    let ip6 = |i: usize| s.pods[i].ip6.ok_or(format!("pod{i} has no IPv6 address"));
    tcp_echo(&s.pods[0], ip6(1)?).map_err(|e| format!("tcp6 pod0->pod1: {e}"))?;
    tcp_echo(&s.pods[1], ip6(0)?).map_err(|e| format!("tcp6 pod1->pod0: {e}"))?;
    udp_echo(&s.pods[0], ip6(1)?).map_err(|e| format!("udp6 pod0->pod1: {e}"))?;
    Ok(())
}

/// Node `DUAL` keeps the IPv4-only CIDR it registered with: its subnet file has
/// no IPv6 line, it publishes no IPv6 VTEP, the dual-stack nodes have no
/// IPv6 entries towards it, and IPv4 pod traffic with it still works.
fn single_stack_node(s: &Suite) -> Result<(), Failed> {
    let node = nodes_json(s)?.swap_remove(DUAL);
    let cidrs = node["spec"]["podCIDRs"].to_string();
    let text = std::fs::read_to_string(subnet_file(&s.lab, DUAL)).unwrap_or_default();
    check(
        cidrs == format!("[\"{SINGLE_CIDR}\"]") && !text.contains("CAPSTAN_IPV6"),
        format!("node {DUAL}: podCIDRs {cidrs}, subnet file:\n{text}"),
    )?;
    let v6 = annotation(&node, "capstan.io/backend-v6-data");
    check(v6.is_empty(), format!("node {DUAL} backend-v6-data {v6:?}"))?;
    for i in 0..DUAL {
        let ns = s.lab.node(i).netns_name().to_string();
        let routes6 = ip_in(&ns, &["-6", "route", "show", "proto", "67"]);
        check(
            has_peer(&s.lab, &ns, DUAL) && routes6.lines().count() == DUAL - 1,
            format!("node {i}: v6 routes {routes6:?}"),
        )?;
    }
    tcp_echo(&s.pods[0], s.pods[DUAL].ip).map_err(|e| format!("tcp pod0->pod{DUAL}: {e}"))?;
    tcp_echo(&s.pods[DUAL], s.pods[0].ip).map_err(|e| format!("tcp pod{DUAL}->pod0: {e}"))?;
    Ok(())
}

fn deleted_node_unmeshed(s: &Suite) -> Result<(), Failed> {
    let gone = s.lab.node(1);
    let subnet = node_subnet(&s.lab, 1).ok_or("node 1 has no subnet")?;
    let subnet6 = node_subnet6(&s.lab, 1).ok_or("node 1 has no IPv6 subnet")?;
    // Its agent goes first, or it would just annotate its Node again.
    if let Ok(mut a) = s.agents.lock() {
        if let Some(d) = a.get_mut(1) {
            d.stop(Duration::from_secs(5));
        }
    }
    s.cp.kubectl_run(&["delete", "node", gone.name()], None)?;
    let ns = s.lab.node(0).netns_name().to_string();
    wait_until(
        "node 0 drops node 1's routes (both families), neighbours and FDB",
        Duration::from_secs(15),
        || {
            lacks_peer(&s.lab, &ns, subnet, gone.ip())
                && !ip_in(&ns, &["-6", "route", "show", "proto", "67"])
                    .contains(&subnet6.to_string())
                && !ip_in(&ns, &["-6", "neigh", "show", "dev", "capstan.1"])
                    .contains(&format!("{} ", subnet6.network()))
        },
    )?;
    Ok(())
}

/// Node 0's network as the kernel and the subnet file have it.
fn node_network(s: &Suite, i: usize) -> Vec<String> {
    let ns = s.lab.node(i).netns_name().to_string();
    let file = subnet_file(&s.lab, i);
    let mtime = std::fs::metadata(&file)
        .and_then(|m| m.modified())
        .map(|t| format!("{t:?}"))
        .unwrap_or_default();
    vec![
        ip_in(&ns, &["-d", "link", "show", "dev", "capstan.1"]),
        ip_in(&ns, &["route", "show"]),
        ip_in(&ns, &["-6", "route", "show"]),
        ip_in(&ns, &["neigh", "show", "dev", "capstan.1"]),
        fdb_in(&ns, "capstan.1"),
        std::fs::read_to_string(&file).unwrap_or_default(),
        mtime,
    ]
}

/// A malformed ConfigMap net-conf.json (bad JSON, a wrong type, a bad
/// CIDR) on a node whose network is up: the agent exits non-zero with one
/// line naming the file and the problem, and the VXLAN device, routes,
/// neighbours, FDB and subnet file stay exactly as they were. Then the
/// good file brings the agent back.
fn malformed_net_conf(s: &Suite) -> Result<(), Failed> {
    let i = 0;
    if let Ok(mut a) = s.agents.lock() {
        if let Some(d) = a.get_mut(i) {
            d.stop(Duration::from_secs(5));
        }
    }
    let before = node_network(s, i);
    check(
        !before[0].is_empty() && !before[5].is_empty(),
        format!("node {i} has no network to keep: {before:?}"),
    )?;
    let bad = s.lab.node(i).dir().join("etc/bad-net-conf.json");
    for (text, problem) in [
        (
            r#"{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan""#,
            "not valid JSON",
        ),
        (
            r#"{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VNI":"one"}}"#,
            "Backend.VNI",
        ),
        (
            r#"{"Network":"10.244.0.0/33"}"#,
            "Network \"10.244.0.0/33\"",
        ),
    ] {
        std::fs::write(&bad, text).map_err(|e| format!("write {}: {e}", bad.display()))?;
        let mut c = s.lab.node(i).command(common::agent_bin())?;
        c.args(kube_agent_args(&s.lab, &s.cp, i, &bad))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().map_err(|e| format!("spawn agent: {e}"))?;
        let exited = wait_until("the agent to exit", Duration::from_secs(20), || {
            matches!(child.try_wait(), Ok(Some(_)))
        });
        if exited.is_err() {
            let _ = child.kill();
        }
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        check(
            exited.is_ok()
                && !out.status.success()
                && lines.len() == 1
                && lines[0].contains(&*bad.to_string_lossy())
                && lines[0].contains(problem),
            format!(
                "{text}: exit {:?}, want one line naming {} and {problem:?}:\n{stderr}",
                out.status,
                bad.display()
            ),
        )?;
    }
    let after = node_network(s, i);
    check(
        before == after,
        format!("node {i}'s network changed:\nbefore {before:#?}\nafter {after:#?}"),
    )?;
    // The good file: the agent runs again and the node stays meshed.
    let agent = spawn_kube_agent(&s.lab, &s.cp, i);
    if let Ok(mut a) = s.agents.lock() {
        a[i] = agent;
    }
    wait_until("node 0 meshed again", Duration::from_secs(30), || {
        meshed(&s.lab, i)
    })?;
    Ok(())
}
