//! The overlay component in the lab: 3 nodes (network namespaces on one
//! underlay bridge), real etcd, one `capstan-agent --components overlay` per
//! node, dual-stack pods made with the `capstan-cni` plugin (the network
//! config has an `IPv6Network`, so IPv4 is proven in dual-stack mode here and
//! alone in the backends and kube suites). One lab is shared by the
//! whole suite (harness = false); tests run in order because later ones
//! reuse the agents and pods the earlier ones checked.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use capstan_lab::daemon::Daemon;
use capstan_lab::{privileged, Lab};
use capstan_overlay::subnet::etcd::{EtcdStore, LeaseStore, StoreSubnetManager};
use capstan_overlay::subnet::{
    BackendData, LeaseAttrs, LeaseEvent, NetworkConfig, SubnetManager, WatchItem,
};
use capstan_overlay::types::NodeIp;
use libtest_mimic::{Arguments, Failed, Trial};

mod common;
use common::*;

const NODES: usize = 3;
const CONFIG: &str = r#"{"Network":"10.244.0.0/16","SubnetLen":24,"IPv6Network":"fd00:10:244::/56","Backend":{"Type":"vxlan","VNI":1,"Port":8472,"DirectRouting":false}}"#;

struct Suite {
    lab: Lab,
    agents: Mutex<Vec<Option<Daemon>>>,
    pods: Vec<Pod>,
    cni: PathBuf,
}

fn main() {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    if !privileged::require(
        "overlay_lab",
        &["ip", "bridge", "etcd", "etcdctl", "nft", "ping"],
    ) {
        return;
    }
    let cni = match capstan_lab::bins::path("capstan-cni") {
        Ok(p) => p,
        Err(e) => panic!("{e}; build it first: cargo build -p capstan-cni"),
    };
    let lab = Lab::builder()
        .nodes(NODES)
        .etcd(true)
        .containerd(false)
        .build()
        .expect("build lab");
    etcdctl(&lab, &["put", "/capstan/network/config", CONFIG]);
    // All agents start at the same instant: they race for subnets.
    let agents: Vec<Option<Daemon>> = (0..NODES).map(|i| Some(spawn_overlay(&lab, i))).collect();
    let suite = Suite {
        lab,
        agents: Mutex::new(agents),
        pods: Vec::new(),
        cni,
    };
    for i in 0..NODES {
        wait_for(
            &format!("node {i} fully meshed"),
            Duration::from_secs(20),
            || meshed(&suite.lab, i),
        )
        .unwrap_or_else(|e| panic!("{e:?}\nagent log:\n{}", agent_log(&suite.lab, i)));
    }
    let pods: Vec<Pod> = (0..NODES)
        .map(|i| make_pod(&suite.lab, &suite.cni, i))
        .collect();
    for p in &pods {
        start_echo(p);
    }
    let suite = Arc::new(Suite { pods, ..suite });

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

/// Runs a fast ping from pod `from` to pod `to` while `during` runs;
/// returns (sent, received).
fn ping_during(s: &Suite, from: usize, to: usize, count: u32, during: impl FnOnce()) -> (u32, u32) {
    let mut cmd = s.pods[from].ns.command("ping").expect("ping cmd");
    cmd.args([
        "-q",
        "-i",
        "0.01",
        "-W",
        "2",
        "-c",
        &count.to_string(),
        &s.pods[to].ip.to_string(),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn ping");
    during();
    let out = child.wait_with_output().expect("ping");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_default();
    let nums: Vec<u32> = line
        .split(',')
        .filter_map(|p| p.split_whitespace().next()?.parse().ok())
        .collect();
    (
        nums.first().copied().unwrap_or(0),
        nums.get(1).copied().unwrap_or(0),
    )
}

// ---------- tests ----------

fn keys_and_subnets(s: &Suite) -> Result<(), Failed> {
    let keys = etcdctl(
        &s.lab,
        &["get", "--prefix", "--keys-only", "/capstan/network/"],
    );
    let keys: Vec<&str> = keys.lines().filter(|l| !l.is_empty()).collect();
    check(
        keys.contains(&"/capstan/network/config"),
        format!("config key: {keys:?}"),
    )?;
    let subnets: Vec<&str> = keys
        .iter()
        .filter_map(|k| k.strip_prefix("/capstan/network/subnets/"))
        .collect();
    check(
        subnets.len() == NODES,
        format!("one lease per node: {keys:?}"),
    )?;
    let mut mine = Vec::new();
    for i in 0..NODES {
        let sn = node_subnet(&s.lab, i).ok_or("subnet file")?;
        let key = format!("{}-{}", sn.network(), sn.prefix());
        check(
            subnets.contains(&key.as_str()),
            format!("node {i} key {key} in {subnets:?}"),
        )?;
        mine.push(sn);
        // Value: public IP, backend type, VTEP MAC, IPv6 subnet; bound to a lease.
        let v = etcdctl(
            &s.lab,
            &[
                "get",
                "--print-value-only",
                &format!("/capstan/network/subnets/{key}"),
            ],
        );
        let attrs: serde_json::Value = serde_json::from_str(v.trim())?;
        check(
            attrs["PublicIP"] == s.lab.node(i).ip().to_string()
                && attrs["BackendType"] == "vxlan"
                && attrs["BackendData"]["VtepMAC"]
                    .as_str()
                    .is_some_and(|m| m.len() == 17)
                && attrs["BackendV6Data"]["VtepMAC"] == attrs["BackendData"]["VtepMAC"],
            format!("lease value {attrs}"),
        )?;
        let v6 = node_subnet6(&s.lab, i).ok_or("IPv6 subnet in the subnet file")?;
        check(
            attrs["IPv6Subnet"] == v6.to_string()
                && v6.prefix() == 64
                && v6.network().segments()[..3] == [0xfd00, 0x10, 0x244]
                && u32::from(v6.network().segments()[3]) == u32::from(sn.network().octets()[2]),
            format!(
                "IPv6Subnet {} for {sn} (subnet file {v6})",
                attrs["IPv6Subnet"]
            ),
        )?;
        let json = etcdctl(
            &s.lab,
            &[
                "get",
                "-w",
                "json",
                &format!("/capstan/network/subnets/{key}"),
            ],
        );
        let j: serde_json::Value = serde_json::from_str(json.trim())?;
        check(
            j["kvs"][0]["lease"].as_i64().is_some_and(|l| l != 0),
            format!("bound to a lease: {j}"),
        )?;
    }
    mine.sort();
    mine.dedup();
    check(
        mine.len() == NODES,
        "agents started at the same instant got distinct subnets",
    )
}

fn subnet_file_and_device(s: &Suite) -> Result<(), Failed> {
    let text = std::fs::read_to_string(subnet_file(&s.lab, 0))?;
    let sn = node_subnet(&s.lab, 0).ok_or("subnet")?;
    let gw = Ipv4Addr::from(u32::from(sn.network()) + 1);
    check(
        text == format!(
            "CAPSTAN_NETWORK=10.244.0.0/16\nCAPSTAN_SUBNET={gw}/24\nCAPSTAN_MTU=1450\nCAPSTAN_IPMASQ=true\nCAPSTAN_IPV6_NETWORK=fd00:10:244::/56\nCAPSTAN_IPV6_SUBNET=fd00:10:244:{:x}::1/64\n",
            sn.network().octets()[2]
        ),
        format!("subnet file: {text:?}"),
    )?;
    let ns = s.lab.node(0).netns_name().to_string();
    let link = ip_in(&ns, &["-d", "link", "show", "capstan.1"]);
    check(
        link.contains("mtu 1450")
            && link.contains("vxlan id 1")
            && link.contains("dstport 8472")
            && link.contains("nolearning")
            && link.contains("UP"),
        format!("device: {link}"),
    )?;
    let addr = ip_in(&ns, &["-o", "addr", "show", "dev", "capstan.1"]);
    let v6 = node_subnet6(&s.lab, 0).ok_or("v6 subnet")?;
    check(
        addr.contains(&format!("inet {}/32", sn.network()))
            && addr.contains(&format!("inet6 {}/128", v6.network())),
        format!("addresses: {addr}"),
    )
}

fn pods_reach_each_other_v6(s: &Suite) -> Result<(), Failed> {
    for i in 0..NODES {
        let ns = s.lab.node(i).netns_name().to_string();
        for j in (0..NODES).filter(|j| *j != i) {
            check(
                has_peer6(&s.lab, &ns, j),
                format!("node {i} has v6 entries for node {j}"),
            )?;
        }
    }
    let mut errors = Vec::new();
    for a in 0..NODES {
        for b in 0..NODES {
            if a == b {
                continue;
            }
            let Some(to) = s.pods[b].ip6 else {
                errors.push(format!("pod{b} has no IPv6 address"));
                continue;
            };
            if let Err(e) = tcp_echo(&s.pods[a], to) {
                errors.push(format!("tcp6 pod{a}->pod{b}: {e}"));
            }
            if let Err(e) = udp_echo(&s.pods[a], to) {
                errors.push(format!("udp6 pod{a}->pod{b}: {e}"));
            }
        }
    }
    check(errors.is_empty(), errors.join("; "))
}

fn drift_is_repaired(s: &Suite) -> Result<(), Failed> {
    let lab = &s.lab;
    let ns = lab.node(0).netns_name().to_string();
    let peer = 1;
    let sn = node_subnet(lab, peer).ok_or("peer subnet")?;
    let sn6 = node_subnet6(lab, peer).ok_or("peer v6 subnet")?;
    let own = node_subnet(lab, 0).ok_or("own subnet")?;
    let fdb = fdb_in(&ns, "capstan.1");
    let mac = fdb
        .lines()
        .find(|l| l.contains(&format!("dst {}", lab.node(peer).ip())))
        .and_then(|l| l.split_whitespace().next())
        .ok_or(format!("peer fdb entry in {fdb}"))?
        .to_string();
    let vtep = sn.network().to_string();
    let peer_ip = lab.node(peer).ip().to_string();
    // Behind the agent's back: a route, a neighbour, the v6 route, the FDB
    // entry and the device's own address.
    let t0 = Instant::now();
    for args in [
        vec!["route", "del", &sn.to_string() as &str],
        vec!["neigh", "del", &vtep, "dev", "capstan.1"],
        vec!["-6", "route", "del", &sn6.to_string()],
        vec![
            "addr",
            "del",
            &format!("{}/32", own.network()),
            "dev",
            "capstan.1",
        ],
    ] {
        let out = std::process::Command::new("ip")
            .args(["-n", &ns])
            .args(&args)
            .output()?;
        check(
            out.status.success(),
            format!("ip {args:?}: {}", String::from_utf8_lossy(&out.stderr)),
        )?;
    }
    let out = std::process::Command::new("bridge")
        .args([
            "-n",
            &ns,
            "fdb",
            "del",
            &mac,
            "dev",
            "capstan.1",
            "dst",
            &peer_ip,
        ])
        .output()?;
    check(
        out.status.success(),
        format!("bridge fdb del: {}", String::from_utf8_lossy(&out.stderr)),
    )?;
    let took = wait_for("node 0 restored", Duration::from_secs(2), || {
        meshed(lab, 0)
            && has_peer6(lab, &ns, peer)
            && ip_in(&ns, &["-o", "addr", "show", "dev", "capstan.1"])
                .contains(&format!("inet {}/32", own.network()))
    })?;
    eprintln!(
        "    drift repaired in {took:?} (deleted at +0, restored at +{:?})",
        t0.elapsed()
    );
    check(
        took < Duration::from_millis(1500),
        format!("repair took {took:?}"),
    )?;
    tcp_echo(&s.pods[0], s.pods[peer].ip).map_err(|e| format!("tcp after repair: {e}"))?;
    let to6 = s.pods[peer].ip6.ok_or("pod v6")?;
    tcp_echo(&s.pods[0], to6).map_err(|e| format!("tcp6 after repair: {e}"))?;
    Ok(())
}

fn stale_vni_device_removed(s: &Suite) -> Result<(), Failed> {
    let lab = &s.lab;
    let ns = lab.node(0).netns_name().to_string();
    let ip = lab.node(0).ip().to_string();
    // What a run with VNI 77 would have left; plus a look-alike it must keep.
    for (name, vni) in [("capstan.77", "77"), ("capstanx77", "78")] {
        let out = std::process::Command::new("ip")
            .args(["-n", &ns, "link", "add", name, "type", "vxlan", "id", vni])
            .args(["dstport", "8472", "local", &ip, "nolearning"])
            .output()?;
        check(
            out.status.success(),
            format!("add {name}: {}", String::from_utf8_lossy(&out.stderr)),
        )?;
    }
    let gone = wait_for("capstan.77 removed", Duration::from_secs(2), || {
        !ip_in(&ns, &["link", "show"]).contains("capstan.77")
    });
    let kept = ip_in(&ns, &["link", "show", "capstanx77"]).contains("capstanx77");
    let _ = std::process::Command::new("ip")
        .args(["-n", &ns, "link", "del", "capstanx77"])
        .output();
    gone?;
    check(kept, "a device outside capstan.<n> is left alone")?;
    check(meshed(lab, 0), "current device untouched")
}

fn pods_reach_each_other(s: &Suite) -> Result<(), Failed> {
    let mut errors = Vec::new();
    for a in 0..NODES {
        for b in 0..NODES {
            if a == b {
                continue;
            }
            if let Err(e) = tcp_echo(&s.pods[a], s.pods[b].ip) {
                errors.push(format!("tcp pod{a}->pod{b}: {e}"));
            }
            if let Err(e) = udp_echo(&s.pods[a], s.pods[b].ip) {
                errors.push(format!("udp pod{a}->pod{b}: {e}"));
            }
        }
    }
    check(errors.is_empty(), errors.join("; "))
}

fn masquerade_table(s: &Suite) -> Result<(), Failed> {
    let list = |family: &str| -> Result<String, Failed> {
        let out = s
            .lab
            .node(0)
            .command("nft")?
            .args(["list", "table", family, "capstan-overlay"])
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let text = list("ip")?;
    check(
        text.contains("hook postrouting")
            && text.contains("masquerade")
            && text.contains("10.244.0.0/16"),
        format!("table: {text}"),
    )?;
    // The lab is dual-stack: IPv6 pod traffic leaving the cluster network
    // is masqueraded by the same rules in the ip6 table.
    let text6 = list("ip6")?;
    check(
        text6.contains("hook postrouting")
            && text6.contains("masquerade")
            && text6.contains("ip6 saddr fd00:10:244::/56")
            && text6.contains("ff00::/8"),
        format!("ip6 table: {text6}"),
    )?;
    // Removed behind the agent's back: restored by the periodic resync.
    let node = s.lab.node(0);
    node.command("nft")?
        .args(["delete", "table", "ip", "capstan-overlay"])
        .output()?;
    wait_for("masquerade table restored", Duration::from_secs(10), || {
        node.command("nft")
            .ok()
            .and_then(|mut c| {
                c.args(["list", "table", "ip", "capstan-overlay"])
                    .output()
                    .ok()
            })
            .is_some_and(|o| String::from_utf8_lossy(&o.stdout) == text)
    })?;
    Ok(())
}

fn restart_loses_nothing(s: &Suite) -> Result<(), Failed> {
    let lab = &s.lab;
    let before = ip_in(
        lab.node(0).netns_name(),
        &["-d", "link", "show", "capstan.1"],
    );
    let (sent, got) = ping_during(s, 0, 1, 600, || {
        std::thread::sleep(Duration::from_millis(1500));
        let mut agents = s.agents.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut d) = agents[0].take() {
            d.kill();
        }
        if let Some(mut d) = agents[1].take() {
            d.kill();
        }
        agents[0] = Some(spawn_overlay(lab, 0));
        agents[1] = Some(spawn_overlay(lab, 1));
    });
    check(
        sent >= 600 && got == sent,
        format!("ping across agent restarts: {got}/{sent}"),
    )?;
    wait_for("mesh after restart", Duration::from_secs(10), || {
        meshed(lab, 0) && meshed(lab, 1)
    })?;
    let after = ip_in(
        lab.node(0).netns_name(),
        &["-d", "link", "show", "capstan.1"],
    );
    let ifindex = |t: &str| t.split(':').next().unwrap_or_default().to_string();
    check(
        ifindex(&before) == ifindex(&after),
        "device kept (not recreated)",
    )?;
    let log = agent_log(lab, 0);
    let last_start = log.rfind("underlay").unwrap_or(0);
    check(
        !log[last_start..].contains("applied"),
        format!(
            "restarted agent changed nothing in the kernel:\n{}",
            &log[last_start..]
        ),
    )
}

fn deleted_lease_removed(s: &Suite) -> Result<(), Failed> {
    let lab = &s.lab;
    let victim = 2;
    let sn = node_subnet(lab, victim).ok_or("subnet")?;
    let peer_ip = lab.node(victim).ip();
    // Stop the victim's agent so it does not re-create its lease at once.
    {
        let mut agents = s.agents.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut d) = agents[victim].take() {
            d.stop(Duration::from_secs(5));
        }
    }
    let key = format!("/capstan/network/subnets/{}-{}", sn.network(), sn.prefix());
    etcdctl(lab, &["del", &key]);
    let t0 = Instant::now();
    for i in 0..NODES {
        if i == victim {
            continue;
        }
        let ns = lab.node(i).netns_name().to_string();
        wait_for(
            &format!("node {i} drops {sn}"),
            Duration::from_secs(2) - t0.elapsed().min(Duration::from_secs(2)),
            || lacks_peer(lab, &ns, sn, peer_ip),
        )?;
    }
    eprintln!(
        "    lease deletion applied on both peers in {:?}",
        t0.elapsed()
    );
    // The victim comes back with the same subnet (from its subnet file).
    {
        let mut agents = s.agents.lock().unwrap_or_else(|e| e.into_inner());
        agents[victim] = Some(spawn_overlay(lab, victim));
    }
    for i in 0..NODES {
        wait_for(
            &format!("node {i} re-meshed"),
            Duration::from_secs(10),
            || meshed(lab, i),
        )?;
    }
    check(
        node_subnet(lab, victim) == Some(sn),
        "victim got its subnet back",
    )
}

fn etcd_outage(s: &Suite) -> Result<(), Failed> {
    let lab = &s.lab;
    let log_len: Vec<usize> = (0..NODES).map(|i| agent_log(lab, i).len()).collect();
    let (sent, got) = ping_during(s, 0, 2, 2000, || {
        std::thread::sleep(Duration::from_millis(1000));
        lab.etcd_stop();
        std::thread::sleep(Duration::from_secs(15));
        lab.etcd_start().expect("restart etcd");
    });
    check(
        sent >= 2000 && got == sent,
        format!("ping across etcd outage: {got}/{sent}"),
    )?;
    for i in 0..NODES {
        wait_for(
            &format!("node {i} renews after outage"),
            Duration::from_secs(15),
            || {
                let log = agent_log(lab, i);
                let new = &log[log_len[i].min(log.len())..];
                new.contains("subnet store unreachable")
                    && new.contains("subnet store reachable again")
                    && new.rfind("lease renewed") > new.find("subnet store unreachable")
            },
        )?;
        let log = agent_log(lab, i);
        let new = &log[log_len[i].min(log.len())..];
        check(
            new.matches("subnet store unreachable").count() == 1,
            format!("node {i}: outage logged once, not per retry:\n{new}"),
        )?;
    }
    // The watch is live again: a lease change still propagates.
    let victim = 1;
    let sn = node_subnet(lab, victim).ok_or("subnet")?;
    {
        let mut agents = s.agents.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut d) = agents[victim].take() {
            d.stop(Duration::from_secs(5));
        }
    }
    etcdctl(
        lab,
        &[
            "del",
            &format!("/capstan/network/subnets/{}-{}", sn.network(), sn.prefix()),
        ],
    );
    let ns0 = lab.node(0).netns_name().to_string();
    wait_for("watch resumed after outage", Duration::from_secs(2), || {
        lacks_peer(lab, &ns0, sn, lab.node(victim).ip())
    })?;
    {
        let mut agents = s.agents.lock().unwrap_or_else(|e| e.into_inner());
        agents[victim] = Some(spawn_overlay(lab, victim));
    }
    for i in 0..NODES {
        wait_for(
            &format!("node {i} re-meshed"),
            Duration::from_secs(10),
            || meshed(lab, i),
        )?;
    }
    Ok(())
}

/// Port of the agents' metrics endpoint (on each node's underlay address).
const METRICS_PORT: u16 = 9464;

/// An overlay agent of this suite (with its metrics endpoint).
fn spawn_overlay(lab: &Lab, i: usize) -> Daemon {
    let addr = format!("{}:{METRICS_PORT}", lab.node(i).ip());
    spawn_agent(lab, i, &["--metrics-addr", &addr])
}

fn metrics_endpoint(s: &Suite) -> Result<(), Failed> {
    // Runs after the etcd outage: node 0 has seen store errors and renewals.
    let addr = std::net::SocketAddr::from((s.lab.node(0).ip(), METRICS_PORT));
    let text: Result<String, String> = s
        .lab
        .node(0)
        .netns()
        .run_in(move || {
            use std::io::{Read, Write};
            let mut c = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))
                .map_err(|e| format!("connect {addr}: {e}"))?;
            c.set_read_timeout(Some(Duration::from_secs(3))).ok();
            c.write_all(b"GET /metrics HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n")
                .map_err(|e| e.to_string())?;
            let mut out = String::new();
            c.read_to_string(&mut out).map_err(|e| e.to_string())?;
            Ok(out)
        })
        .map_err(|e| e.to_string())?;
    let text = text?;
    let value = |name: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    check(text.starts_with("HTTP/1.1 200"), format!("answer: {text}"))?;
    check(
        value("capstan_overlay_peers") == Some((NODES - 1) as f64),
        format!("peers programmed: {text}"),
    )?;
    for (name, min) in [
        ("capstan_overlay_reconcile_runs_total", 1.0),
        ("capstan_overlay_reconcile_duration_seconds_count", 1.0),
        ("capstan_overlay_subnet_store_errors_total", 1.0),
        ("capstan_overlay_lease_renewals_total", 1.0),
        ("capstan_overlay_reconcile_errors_total", 0.0),
    ] {
        check(
            value(name).is_some_and(|v| v >= min),
            format!("{name} >= {min} in {text}"),
        )?;
    }
    Ok(())
}

fn malformed_config(s: &Suite) -> Result<(), Failed> {
    let lab = &s.lab;
    etcdctl(
        lab,
        &[
            "put",
            "/capstan/bad/config",
            r#"{"Network":"10.244.0.0/16","SubnetLen":"x"}"#,
        ],
    );
    let tmp = lab.node(0).dir().join("run/capstan/bad.env");
    let (ok, err) = agent_exit(lab, 0, &["--etcd-prefix", "/capstan/bad"], &tmp);
    check(!ok, "agent fails on malformed config")?;
    check(
        err.contains("/capstan/bad/config") && err.contains("malformed"),
        format!("error names the key: {err}"),
    )?;
    let (ok, err) = agent_exit(lab, 0, &["--etcd-prefix", "/capstan/missing"], &tmp);
    check(
        !ok && err.contains("/capstan/missing/config") && err.contains("missing"),
        format!("missing config: {err}"),
    )?;
    check(!tmp.exists(), "no subnet file written")
}

fn exhausted_network(s: &Suite) -> Result<(), Failed> {
    let lab = &s.lab;
    etcdctl(
        lab,
        &[
            "put",
            "/capstan/tiny/config",
            r#"{"Network":"10.252.0.0/23","SubnetLen":24,"Backend":{"Type":"vxlan","VNI":9}}"#,
        ],
    );
    etcdctl(
        lab,
        &[
            "put",
            "/capstan/tiny/subnets/10.252.1.0-24",
            r#"{"PublicIP":"192.168.250.99","BackendType":"vxlan","BackendData":{"VtepMAC":"02:00:00:00:00:99"}}"#,
        ],
    );
    let tmp = lab.node(0).dir().join("run/capstan/tiny.env");
    let leases = || etcdctl(lab, &["lease", "list"]);
    let before = leases();
    let (ok, err) = agent_exit(lab, 0, &["--etcd-prefix", "/capstan/tiny"], &tmp);
    check(!ok, "agent fails on an exhausted network")?;
    check(
        leases() == before,
        format!(
            "the failed acquire revoked its etcd lease: before {before:?}, after {:?}",
            leases()
        ),
    )?;
    check(
        err.contains("10.252.0.0/23") && err.contains("no free"),
        format!("clear exhaustion error: {err}"),
    )?;
    check(
        err.trim().lines().count() == 1
            || err
                .lines()
                .last()
                .is_some_and(|l| l.starts_with("capstan-agent:")),
        "one-line error",
    )
}

fn concurrent_acquire(s: &Suite) -> Result<(), Failed> {
    let ep = s.lab.etcd_endpoint();
    let failures = in_node(&s.lab, 0, move || {
        Box::pin(async move {
            let mut failures = Vec::new();
            for round in 0..10 {
                let prefix = format!("/capstan/race-{round}");
                let a = EtcdStore::connect(std::slice::from_ref(&ep), &prefix)
                    .await
                    .expect("connect");
                let b = EtcdStore::connect(std::slice::from_ref(&ep), &prefix)
                    .await
                    .expect("connect");
                let cfg =
                    NetworkConfig::parse("x", br#"{"Network":"10.253.0.0/22","SubnetLen":24}"#)
                        .expect("cfg");
                let attrs = |n: u8| LeaseAttrs {
                    public_ip: NodeIp(Ipv4Addr::new(192, 168, 9, n)),
                    backend_type: "vxlan".into(),
                    backend_data: BackendData::default(),
                    node_name: format!("racer-{n}"),
                    ipv6_subnet: None,
                    backend_v6_data: None,
                };
                let (ma, mb) = (
                    StoreSubnetManager {
                        store: a,
                        ttl: Duration::from_secs(30),
                    },
                    StoreSubnetManager {
                        store: b,
                        ttl: Duration::from_secs(30),
                    },
                );
                let (a1, a2) = (attrs(1), attrs(2));
                let (ra, rb) =
                    tokio::join!(ma.acquire(&cfg, &a1, None), mb.acquire(&cfg, &a2, None));
                match (ra, rb) {
                    (Ok(x), Ok(y)) if x.subnet != y.subnet => {}
                    other => failures.push(format!("round {round}: {other:?}")),
                }
            }
            failures
        })
    });
    check(failures.is_empty(), failures.join("; "))
}

fn watch_recovers_from_compaction(s: &Suite) -> Result<(), Failed> {
    let ep = s.lab.etcd_endpoint();
    let result: Result<(), String> = in_node(&s.lab, 0, move || {
        Box::pin(async move {
            let store = EtcdStore::connect(&[ep], "/capstan/compact")
                .await
                .map_err(|e| e.to_string())?;
            let attrs = LeaseAttrs {
                public_ip: NodeIp(Ipv4Addr::new(192, 168, 9, 1)),
                backend_type: "vxlan".into(),
                backend_data: BackendData::default(),
                node_name: String::new(),
                ipv6_subnet: None,
                backend_v6_data: None,
            };
            let id = store
                .grant(Duration::from_secs(60))
                .await
                .map_err(|e| e.to_string())?;
            let s1: ipnetwork::Ipv4Network = "10.254.1.0/24".parse().map_err(|e| format!("{e}"))?;
            let s2: ipnetwork::Ipv4Network = "10.254.2.0/24".parse().map_err(|e| format!("{e}"))?;
            let s3: ipnetwork::Ipv4Network = "10.254.3.0/24".parse().map_err(|e| format!("{e}"))?;
            store
                .create(s1, &attrs, id)
                .await
                .map_err(|e| e.to_string())?;
            let old = store.list().await.map_err(|e| e.to_string())?.revision;
            store
                .create(s2, &attrs, id)
                .await
                .map_err(|e| e.to_string())?;
            let mut c = store.client();
            c.delete(store.subnet_key(s1), None)
                .await
                .map_err(|e| e.to_string())?;
            let now = store.list().await.map_err(|e| e.to_string())?.revision;
            c.compact(now, None).await.map_err(|e| e.to_string())?;
            // Watching from below the compaction: a full re-list first.
            let mut rx = store.watch(old + 1).await.map_err(|e| e.to_string())?;
            let first = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .map_err(|_| "no watch item")?;
            match first {
                Some(Ok(WatchItem::Resync(list))) => {
                    let subnets: Vec<_> = list.leases.iter().map(|l| l.subnet).collect();
                    if subnets != vec![s2] {
                        return Err(format!("resync list {subnets:?}"));
                    }
                }
                other => return Err(format!("expected a resync, got {other:?}")),
            }
            // ...then it resumes with live events.
            store
                .create(s3, &attrs, id)
                .await
                .map_err(|e| e.to_string())?;
            let next = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .map_err(|_| "no event after resync")?;
            match next {
                Some(Ok(WatchItem::Events { events, .. })) if matches!(events.as_slice(), [LeaseEvent::Put(l)] if l.subnet == s3) => {
                    Ok(())
                }
                other => Err(format!("expected put of {s3}, got {other:?}")),
            }
        })
    });
    result.map_err(Failed::from)
}
