//! The overlay's other dataplanes in the lab: the `host-gw` backend and
//! VXLAN with `DirectRouting` (nodes share the underlay link, so every peer
//! gets a plain route via its public IP). Each trial builds its own 2-node
//! lab with real etcd; pods are made with capstan-cni.

use std::time::Duration;

use capstan_lab::daemon::Daemon;
use capstan_lab::{privileged, Lab};
use libtest_mimic::{Arguments, Failed, Trial};

mod common;
use common::*;

const NODES: usize = 2;

fn main() {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    if !privileged::require(
        "overlay_backends",
        &["ip", "bridge", "etcd", "etcdctl", "nft"],
    ) {
        return;
    }
    let trials = vec![
        Trial::test("host_gw_routes_via_peer_public_ip", || {
            backend_suite(
                r#"{"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"host-gw"}}"#,
                false,
                1500,
            )
        }),
        Trial::test(
            "vxlan_direct_routing_uses_plain_routes_on_shared_link",
            || {
                backend_suite(
                    r#"{"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan","VNI":1,"DirectRouting":true}}"#,
                    true,
                    1450,
                )
            },
        ),
    ];
    libtest_mimic::run(&args, trials).exit();
}

fn backend_suite(config: &str, vxlan_device: bool, mtu: u32) -> Result<(), Failed> {
    let cni = capstan_lab::bins::path("capstan-cni")
        .map_err(|e| format!("{e}; build it first: cargo build -p capstan-cni"))?;
    let lab = Lab::builder()
        .nodes(NODES)
        .etcd(true)
        .containerd(false)
        .build()?;
    etcdctl(&lab, &["put", "/capstan/network/config", config]);
    // The underlay is named by address here (by name in the other suite).
    let _agents: Vec<Daemon> = (0..NODES)
        .map(|i| spawn_agent(&lab, i, &["--iface", &lab.node(i).ip().to_string()]))
        .collect();
    for i in 0..NODES {
        let j = 1 - i;
        let ns = lab.node(i).netns_name().to_string();
        wait_until(
            &format!("node {i} routes to node {j}"),
            Duration::from_secs(20),
            || {
                let Some(sn) = node_subnet(&lab, j) else {
                    return false;
                };
                ip_in(&ns, &["route", "show", "proto", "67"])
                    .contains(&format!("{sn} via {} dev eth0", lab.node(j).ip()))
            },
        )
        .map_err(|e| format!("{e:?}\nagent log:\n{}", agent_log(&lab, i)))?;
        let link = ip_in(&ns, &["-d", "link", "show", "capstan.1"]);
        check(
            link.contains("vxlan id 1") == vxlan_device,
            format!("vxlan device present: {vxlan_device}: {link}"),
        )?;
        if vxlan_device {
            let neigh = ip_in(&ns, &["neigh", "show", "dev", "capstan.1"]);
            let fdb = fdb_in(&ns, "capstan.1");
            check(
                !neigh.contains("PERMANENT") && !fdb.contains("dst"),
                format!("no tunnel entries for same-link peers: {neigh} {fdb}"),
            )?;
        }
        let file = std::fs::read_to_string(subnet_file(&lab, i))?;
        check(
            file.contains(&format!("CAPSTAN_MTU={mtu}\n")),
            format!("subnet file: {file}"),
        )?;
    }
    let pods: Vec<Pod> = (0..NODES).map(|i| make_pod(&lab, &cni, i)).collect();
    for p in &pods {
        start_echo(p);
    }
    let mut errors = Vec::new();
    for (a, b) in [(0, 1), (1, 0)] {
        if let Err(e) = tcp_echo(&pods[a], pods[b].ip) {
            errors.push(format!("tcp pod{a}->pod{b}: {e}"));
        }
        if let Err(e) = udp_echo(&pods[a], pods[b].ip) {
            errors.push(format!("udp pod{a}->pod{b}: {e}"));
        }
    }
    check(errors.is_empty(), errors.join("; "))
}
