//! The meshed overlay: etcd keys in the documented layout with distinct
//! subnets, the subnet file and VXLAN device, pods reaching each other over
//! IPv4 and IPv6, masquerade in its own table.

use std::net::Ipv4Addr;
use std::time::Duration;

use libtest_mimic::Failed;

use crate::common::*;
use crate::suite::*;

pub fn keys_and_subnets(s: &Suite) -> Result<(), Failed> {
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

pub fn subnet_file_and_device(s: &Suite) -> Result<(), Failed> {
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

pub fn pods_reach_each_other(s: &Suite) -> Result<(), Failed> {
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

pub fn pods_reach_each_other_v6(s: &Suite) -> Result<(), Failed> {
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

pub fn masquerade_table(s: &Suite) -> Result<(), Failed> {
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
    wait_until("masquerade table restored", Duration::from_secs(10), || {
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
