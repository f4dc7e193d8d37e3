//! Chaining: capstan first, then the reference `portmap`, `tuning` and
//! `bandwidth` plugins (Debian containernetworking-plugins) consuming its
//! result as prevResult, the way libcni runs a conflist; and capstan
//! itself accepting a prevResult when it is not first.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::{json, Value};

fn reference(plugin: &str) -> PathBuf {
    Path::new(REFERENCE_DIR).join(plugin)
}

#[test]
fn chain_with_portmap_tuning_bandwidth() {
    if !capstan_lab::privileged::require(
        "chain_with_portmap_tuning_bandwidth",
        &[
            "ip",
            "iptables",
            "tc",
            "/usr/lib/cni/portmap",
            "/usr/lib/cni/tuning",
            "/usr/lib/cni/bandwidth",
        ],
    ) {
        return;
    }
    let fx = Fixture::new();
    // Dual-stack, so portmap maps both families from capstan's result.
    fx.write_subnet_file(&format!(
        "{SUBNET_V4}CAPSTAN_IPV6_SUBNET=fd00:10:244:1::1/64\n"
    ));
    let pod = fx.pod("pod");
    let netns = pod.display().to_string();
    let id = "c-chain";
    // The reference plugins (1.1.1) speak up to 1.0.0.
    let version = "1.0.0";
    let name = "capstan-chain";
    let mut capstan = fx.conf(version);
    capstan["name"] = json!(name);
    let plugins: Vec<(PathBuf, Value)> = vec![
        (PathBuf::from(PLUGIN), capstan),
        (
            reference("portmap"),
            json!({"cniVersion": version, "name": name, "type": "portmap",
                   "capabilities": {"portMappings": true},
                   "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}}),
        ),
        (
            reference("tuning"),
            json!({"cniVersion": version, "name": name, "type": "tuning",
                   "sysctl": {"net.ipv4.conf.eth0.accept_redirects": "0"}}),
        ),
        (
            reference("bandwidth"),
            json!({"cniVersion": version, "name": name, "type": "bandwidth",
                   "ingressRate": 1000000, "ingressBurst": 100000,
                   "egressRate": 1000000, "egressBurst": 100000}),
        ),
    ];
    let env = |cmd: &'static str| {
        vec![
            ("CNI_COMMAND", cmd),
            ("CNI_CONTAINERID", id),
            ("CNI_NETNS", netns.as_str()),
            ("CNI_IFNAME", "eth0"),
        ]
    };

    // ADD in order, each getting the previous result.
    let mut prev: Option<Value> = None;
    for (bin, conf) in &plugins {
        let conf = match &prev {
            Some(p) => with_prev(conf, p),
            None => conf.clone(),
        };
        let a = fx.exec(bin, &env("ADD"), conf.to_string().as_bytes());
        assert!(
            a.ok,
            "ADD {} failed: {} {}",
            bin.display(),
            a.stdout,
            a.stderr
        );
        prev = Some(a.json());
    }
    let result = prev.expect("final result");
    let addr = result["ips"][0]["address"]
        .as_str()
        .expect("address survives the chain")
        .to_string();
    assert!(addr.starts_with("10.244.1."), "{result}");

    // What the chained plugins did with capstan's result.
    let nat = fx
        .node
        .command("iptables")
        .expect("cmd")
        .args(["-t", "nat", "-S"])
        .output()
        .expect("iptables");
    let nat = String::from_utf8_lossy(&nat.stdout);
    let pod_ip = addr.trim_end_matches("/24");
    assert!(
        nat.contains(&format!("{pod_ip}:80")),
        "portmap DNAT to the pod: {nat}"
    );
    let sysctl = capstan_lab::Netns::existing(&ns_name(&pod))
        .expect("pod")
        .command("cat")
        .expect("cmd")
        .arg("/proc/sys/net/ipv4/conf/eth0/accept_redirects")
        .output()
        .expect("cat");
    assert_eq!(
        String::from_utf8_lossy(&sysctl.stdout).trim(),
        "0",
        "tuning set the pod sysctl"
    );
    let host = result["interfaces"][1]["name"].as_str().expect("host veth");
    let tc = fx
        .node
        .command("tc")
        .expect("cmd")
        .args(["qdisc", "show", "dev", host])
        .output()
        .expect("tc");
    assert!(
        String::from_utf8_lossy(&tc.stdout).contains("tbf"),
        "bandwidth shaped the host veth"
    );

    // CHECK through the chain. portmap 1.1.1's CHECK is broken upstream (it
    // looks for its IPv4 rules in the IPv6 table and fails on any result),
    // so it is left out; the others check capstan's result.
    for (bin, conf) in plugins.iter().filter(|(b, _)| !b.ends_with("portmap")) {
        let a = fx.exec(
            bin,
            &env("CHECK"),
            with_prev(conf, &result).to_string().as_bytes(),
        );
        assert!(
            a.ok,
            "CHECK {} failed: {} {}",
            bin.display(),
            a.stdout,
            a.stderr
        );
    }

    // DEL in reverse order, all with the final result.
    for (bin, conf) in plugins.iter().rev() {
        let a = fx.exec(
            bin,
            &env("DEL"),
            with_prev(conf, &result).to_string().as_bytes(),
        );
        assert!(
            a.ok,
            "DEL {} failed: {} {}",
            bin.display(),
            a.stdout,
            a.stderr
        );
    }
    assert!(fx.reservations().is_empty());
    assert!(fx.node_veths().is_empty(), "{:?}", fx.node_veths());
}

#[test]
fn capstan_accepts_a_prev_result_when_not_first() {
    if !may_run("capstan_accepts_a_prev_result_when_not_first") {
        return;
    }
    let fx = Fixture::new();
    fx.write_subnet_file(SUBNET_V4);
    let pod = fx.pod("pod");
    let prev = json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "net0", "sandbox": pod.display().to_string()}],
        "ips": [{"address": "192.168.5.2/24", "interface": 0}],
        "dns": {"nameservers": ["192.168.5.1"]}
    });
    let conf = with_prev(&fx.conf("1.0.0"), &prev);
    let r = fx
        .call("ADD", "c-second", &pod, "eth0", &conf)
        .expect_ok()
        .json();
    let ifaces = r["interfaces"].as_array().expect("interfaces");
    assert_eq!(
        ifaces.len(),
        4,
        "previous interface kept, ours appended: {r}"
    );
    assert_eq!(ifaces[0]["name"], "net0");
    assert_eq!(r["ips"][0]["address"], "192.168.5.2/24");
    assert_eq!(
        r["ips"][1]["interface"], 3,
        "our IP points at our pod interface"
    );
    assert_eq!(r["dns"]["nameservers"], json!(["192.168.5.1"]));
    fx.call("CHECK", "c-second", &pod, "eth0", &with_prev(&conf, &r))
        .expect_ok();
    fx.call("DEL", "c-second", &pod, "eth0", &with_prev(&conf, &r))
        .expect_ok();
    assert!(fx.reservations().is_empty());
}
