//! ADD, CHECK, DEL against the real kernel: the result's shape per spec
//! version, the state ADD leaves (bridge, veth, MTU, address, route), CHECK
//! catching drift, and DEL's idempotence.

mod common;

use common::*;
use serde_json::{json, Value};

#[test]
fn add_check_del_round_trip() {
    if !may_run("add_check_del_round_trip") {
        return;
    }
    let fx = Fixture::new();
    fx.write_subnet_file(SUBNET_V4);
    let pod = fx.pod("pod");
    let conf = fx.conf("1.1.0");
    // Other links in the pod first, so eth0 does not get a predictable index.
    ip_in(
        &ns_name(&pod),
        &[
            "link", "add", "pre0", "type", "veth", "peer", "name", "pre1",
        ],
    );

    let add = fx.call("ADD", "c-roundtrip", &pod, "eth0", &conf);
    let result = add.expect_ok().json();
    assert_eq!(result["cniVersion"], "1.1.0");
    let ifaces = result["interfaces"].as_array().expect("interfaces");
    assert_eq!(
        ifaces.len(),
        3,
        "bridge, host veth, pod interface: {result}"
    );
    assert_eq!(ifaces[0]["name"], "capstan0");
    assert_eq!(ifaces[2]["name"], "eth0");
    assert_eq!(ifaces[2]["sandbox"], pod.display().to_string());
    assert_eq!(ifaces[2]["mtu"], 1450);
    for i in ifaces {
        assert!(
            i["mac"].as_str().is_some_and(|m| m.len() == 17),
            "mac on {i}"
        );
    }
    let ip = &result["ips"][0];
    assert_eq!(ip["interface"], 2);
    assert_eq!(ip["gateway"], "10.244.1.1");
    let address = ip["address"].as_str().expect("address").to_string();
    assert!(
        address.starts_with("10.244.1.") && address.ends_with("/24"),
        "{address}"
    );
    assert_eq!(
        result["routes"],
        json!([{"dst": "0.0.0.0/0", "gw": "10.244.1.1"}])
    );
    assert!(result["dns"].is_object());

    // The kernel state ADD promised.
    let pod_ns = ns_name(&pod);
    let pod_addr = ip_in(&pod_ns, &["-o", "addr", "show", "dev", "eth0"]);
    assert!(pod_addr.contains(&format!("inet {address}")), "{pod_addr}");
    let pod_link = ip_in(&pod_ns, &["link", "show", "eth0"]);
    assert!(
        pod_link.contains("mtu 1450") && pod_link.contains("UP"),
        "{pod_link}"
    );
    let routes = ip_in(&pod_ns, &["route"]);
    assert!(
        routes.contains("default via 10.244.1.1 dev eth0"),
        "{routes}"
    );
    let host = ifaces[1]["name"].as_str().expect("host veth name");
    let host_link = fx.node_ip(&["link", "show", host]);
    assert!(
        host_link.contains("master capstan0") && host_link.contains("mtu 1450"),
        "{host_link}"
    );
    let bridge = fx.node_ip(&["-o", "addr", "show", "dev", "capstan0"]);
    assert!(bridge.contains("inet 10.244.1.1/24"), "{bridge}");
    let fwd = fx
        .node
        .command("cat")
        .expect("cmd")
        .arg("/proc/sys/net/ipv4/ip_forward")
        .output()
        .expect("cat");
    assert_eq!(
        String::from_utf8_lossy(&fwd.stdout).trim(),
        "1",
        "ip_forward in the node netns"
    );
    let gw_ping = capstan_lab::Netns::existing(&pod_ns)
        .expect("pod ns")
        .command("ping")
        .expect("cmd")
        .args(["-c1", "-W2", "10.244.1.1"])
        .output()
        .expect("ping");
    assert!(gw_ping.status.success(), "pod reaches its gateway");
    assert_eq!(
        fx.reservations(),
        vec![address.trim_end_matches("/24").to_string()]
    );

    let check = fx.call(
        "CHECK",
        "c-roundtrip",
        &pod,
        "eth0",
        &with_prev(&conf, &result),
    );
    assert!(
        check.ok && check.stdout.is_empty(),
        "CHECK passes and prints nothing: {check:?}"
    );

    let del = fx.call(
        "DEL",
        "c-roundtrip",
        &pod,
        "eth0",
        &with_prev(&conf, &result),
    );
    assert!(del.ok && del.stdout.is_empty(), "{del:?}");
    assert!(
        fx.node_veths().is_empty(),
        "veth gone: {:?}",
        fx.node_veths()
    );
    assert!(!ip_in(&pod_ns, &["link"]).contains("eth0"));
    assert!(fx.reservations().is_empty());
    // Idempotent.
    fx.call("DEL", "c-roundtrip", &pod, "eth0", &conf)
        .expect_ok();
}

#[test]
fn results_follow_the_requested_version() {
    if !may_run("results_follow_the_requested_version") {
        return;
    }
    let fx = Fixture::new();
    fx.write_subnet_file(SUBNET_V4);
    for (i, version) in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"].into_iter().enumerate() {
        let pod = fx.pod(&format!("v{i}"));
        let conf = fx.conf(version);
        let id = format!("c-version-{i}");
        let r = fx.call("ADD", &id, &pod, "eth0", &conf).expect_ok().json();
        assert_eq!(r["cniVersion"], version);
        let old = version.starts_with("0.");
        assert_eq!(r["ips"][0].get("version").is_some(), old, "{version}: {r}");
        if old {
            assert_eq!(r["ips"][0]["version"], "4");
        }
        assert_eq!(
            r["interfaces"][2].get("mtu").is_some(),
            version == "1.1.0",
            "{version}: {r}"
        );
        if version != "0.3.1" {
            fx.call("CHECK", &id, &pod, "eth0", &with_prev(&conf, &r))
                .expect_ok();
        } else {
            // CHECK does not exist before 0.4.0.
            assert_eq!(
                fx.call("CHECK", &id, &pod, "eth0", &with_prev(&conf, &r))
                    .code(),
                1
            );
        }
        fx.call("DEL", &id, &pod, "eth0", &conf).expect_ok();
    }
    assert!(fx.reservations().is_empty());
}

#[test]
fn check_reports_drift() {
    if !may_run("check_reports_drift") {
        return;
    }
    let fx = Fixture::new();
    fx.write_subnet_file(SUBNET_V4);
    let pod = fx.pod("pod");
    let conf = fx.conf("1.0.0");
    let r = fx
        .call("ADD", "c-drift", &pod, "eth0", &conf)
        .expect_ok()
        .json();
    let with = with_prev(&conf, &r);
    let pod_ns = ns_name(&pod);
    let addr = r["ips"][0]["address"].as_str().expect("addr").to_string();

    // Route gone.
    ip_in(&pod_ns, &["route", "del", "default"]);
    let a = fx.call("CHECK", "c-drift", &pod, "eth0", &with);
    assert_eq!(a.code(), 101);
    assert!(
        a.json()["msg"]
            .as_str()
            .unwrap_or("")
            .contains("route 0.0.0.0/0"),
        "{}",
        a.stdout
    );

    // Address gone.
    ip_in(&pod_ns, &["addr", "del", &addr, "dev", "eth0"]);
    let a = fx.call("CHECK", "c-drift", &pod, "eth0", &with);
    assert_eq!(a.code(), 101);
    assert!(a.stdout.contains("lacks address"), "{}", a.stdout);

    // Interface gone.
    ip_in(&pod_ns, &["link", "del", "eth0"]);
    let a = fx.call("CHECK", "c-drift", &pod, "eth0", &with);
    assert_eq!(a.code(), 101);
    assert!(a.stdout.contains("missing"), "{}", a.stdout);

    // No prevResult: the runtime broke the protocol.
    assert_eq!(fx.call("CHECK", "c-drift", &pod, "eth0", &conf).code(), 7);

    fx.call("DEL", "c-drift", &pod, "eth0", &conf).expect_ok();
    assert!(fx.reservations().is_empty());
    assert!(fx.node_veths().is_empty());
}

#[test]
fn del_is_idempotent() {
    if !may_run("del_is_idempotent") {
        return;
    }
    let fx = Fixture::new();
    fx.write_subnet_file(SUBNET_V4);
    let conf = fx.conf("1.1.0");
    let pod = fx.pod("pod");
    // Unknown container, existing netns without the interface.
    fx.call("DEL", "never-added", &pod, "eth0", &conf)
        .expect_ok();
    // Netns path that does not exist.
    let gone = std::path::Path::new("/run/netns/capstan-no-such-netns");
    fx.call("DEL", "never-added", gone, "eth0", &conf)
        .expect_ok();
    // No CNI_NETNS at all.
    let r = fx.exec(
        std::path::Path::new(PLUGIN),
        &[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "x"),
            ("CNI_IFNAME", "eth0"),
        ],
        conf.to_string().as_bytes(),
    );
    r.expect_ok();
    // Pod netns deleted after ADD: DEL still releases the address.
    let r = fx
        .call("ADD", "c-netns-gone", &pod, "eth0", &conf)
        .expect_ok()
        .json();
    assert_eq!(fx.reservations().len(), 1);
    let pod_ns = ns_name(&pod);
    capstan_lab::netns::delete(&pod_ns);
    fx.call("DEL", "c-netns-gone", &pod, "eth0", &with_prev(&conf, &r))
        .expect_ok();
    fx.call("DEL", "c-netns-gone", &pod, "eth0", &conf)
        .expect_ok();
    assert!(fx.reservations().is_empty());
    assert!(fx.node_veths().is_empty());
}

#[test]
fn dual_stack_from_the_subnet_file() {
    if !may_run("dual_stack_from_the_subnet_file") {
        return;
    }
    let fx = Fixture::new();
    fx.write_subnet_file(&format!("{SUBNET_V4}CAPSTAN_IPV6_NETWORK=fd00:10:244::/56\nCAPSTAN_IPV6_SUBNET=fd00:10:244:1::1/64\n"));
    let pod = fx.pod("pod");
    let conf = fx.conf("1.1.0");
    let r = fx
        .call("ADD", "c-dual", &pod, "eth0", &conf)
        .expect_ok()
        .json();
    let ips: Vec<&Value> = r["ips"].as_array().expect("ips").iter().collect();
    assert_eq!(ips.len(), 2, "{r}");
    assert!(ips[1]["address"]
        .as_str()
        .is_some_and(|a| a.starts_with("fd00:10:244:1::") && a.ends_with("/64")));
    assert_eq!(ips[1]["gateway"], "fd00:10:244:1::1");
    let routes6 = ip_in(&ns_name(&pod), &["-6", "route"]);
    assert!(
        routes6.contains("default via fd00:10:244:1::1 dev eth0"),
        "{routes6}"
    );
    // The new bridge's link-local address skipped DAD: forwarded IPv6
    // towards the pod can be resolved at once (the kernel solicits only from
    // a non-tentative link-local).
    let tentative = fx.node_ip(&["-6", "-o", "addr", "show", "dev", "capstan0", "tentative"]);
    assert!(tentative.is_empty(), "{tentative}");
    let link_local = fx.node_ip(&[
        "-6", "-o", "addr", "show", "dev", "capstan0", "scope", "link",
    ]);
    assert!(link_local.contains("fe80::"), "{link_local}");
    fx.call("CHECK", "c-dual", &pod, "eth0", &with_prev(&conf, &r))
        .expect_ok();
    fx.call("DEL", "c-dual", &pod, "eth0", &conf).expect_ok();
    assert!(fx.reservations().is_empty());
}

#[test]
fn inline_subnet_and_options() {
    if !may_run("inline_subnet_and_options") {
        return;
    }
    let fx = Fixture::new();
    // No subnet file at all: the inline subnet is enough.
    let pod = fx.pod("pod");
    let mut conf = fx.conf("1.1.0");
    conf["subnet"] = json!("10.77.0.1/24");
    conf["bridge"] = json!("cbr-test");
    conf["mtu"] = json!(1400);
    conf["hairpinMode"] = json!(true);
    conf["isDefaultGateway"] = json!(false);
    conf["dns"] = json!({"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"]});
    let log = fx.dir.join("cni.log");
    conf["logFile"] = json!(log);
    conf["logLevel"] = json!("debug");
    let r = fx
        .call("ADD", "c-inline", &pod, "eth0", &conf)
        .expect_ok()
        .json();
    assert_eq!(r["interfaces"][0]["name"], "cbr-test");
    assert_eq!(r["ips"][0]["gateway"], "10.77.0.1");
    assert_eq!(r["dns"]["nameservers"], json!(["10.96.0.10"]));
    assert!(
        r.get("routes").is_none(),
        "no default route and no cluster network known: {r}"
    );
    let host = r["interfaces"][1]["name"].as_str().expect("host");
    let detail = fx.node_ip(&["-d", "link", "show", host]);
    assert!(
        detail.contains("hairpin on") && detail.contains("mtu 1400"),
        "{detail}"
    );
    fx.call("DEL", "c-inline", &pod, "eth0", &conf).expect_ok();
    // Logs went to the file (stdout was pure protocol: it parsed as JSON).
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        logged.contains("added") && logged.contains("deleted"),
        "{logged}"
    );
}

/// What a crashed ADD can leave (its reservation, the host end of its veth,
/// a half-written temp record) is cleaned by DEL, and a retried ADD gets
/// the same address instead of failing on the leftover veth.
#[test]
fn leftovers_of_a_crashed_add_are_recoverable() {
    if !may_run("leftovers_of_a_crashed_add_are_recoverable") {
        return;
    }
    let fx = Fixture::new();
    fx.write_subnet_file(SUBNET_V4);
    let conf = fx.conf("1.1.0");
    let pod = fx.pod("pod");
    let host = capstan_cni::plugin::host_veth_name("c-crash", "eth0");
    let leave_debris = || {
        std::fs::create_dir_all(fx.data_dir()).expect("dir");
        std::fs::write(fx.data_dir().join("10.244.1.9"), "c-crash\neth0\n").expect("record");
        std::fs::write(fx.data_dir().join(".tmp-10.244.1.10"), "c-other").expect("tmp");
        fx.node_ip(&[
            "link",
            "add",
            &host,
            "type",
            "veth",
            "peer",
            "name",
            "crashpeer",
        ]);
        assert_eq!(fx.node_veths().len(), 2);
    };

    leave_debris();
    fx.call("DEL", "c-crash", &pod, "eth0", &conf).expect_ok();
    assert!(fx.reservations().is_empty(), "{:?}", fx.reservations());
    assert!(fx.node_veths().is_empty(), "{:?}", fx.node_veths());
    assert!(
        !fx.data_dir().join(".tmp-10.244.1.10").exists(),
        "temp record swept"
    );

    leave_debris();
    let r = fx
        .call("ADD", "c-crash", &pod, "eth0", &conf)
        .expect_ok()
        .json();
    assert_eq!(
        r["ips"][0]["address"], "10.244.1.9/24",
        "the retried ADD keeps its address"
    );
    assert_eq!(fx.node_veths(), vec![host.clone()]);
    fx.call("DEL", "c-crash", &pod, "eth0", &conf).expect_ok();
    assert!(fx.reservations().is_empty());
    assert!(fx.node_veths().is_empty());
}

#[test]
fn ip_masq_installs_our_own_nat_table_once() {
    if !capstan_lab::privileged::require("ip_masq_installs_our_own_nat_table_once", &["ip", "nft"])
    {
        return;
    }
    let fx = Fixture::new();
    fx.write_subnet_file(SUBNET_V4);
    let mut conf = fx.conf("1.1.0");
    conf["ipMasq"] = json!(true);
    let table = capstan_cni::plugin::masquerade::table_name("capstan-test");
    let list = || {
        let out = fx
            .node
            .command("nft")
            .expect("cmd")
            .args(["list", "table", "ip", &table])
            .output()
            .expect("nft");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let a = fx.pod("a");
    fx.call("ADD", "c-masq-a", &a, "eth0", &conf).expect_ok();
    let rules = list();
    assert!(
        rules.contains("ip saddr 10.244.1.0/24 ip daddr != 10.244.0.0/16")
            && rules.contains("masquerade"),
        "{rules}"
    );
    // A second pod finds the rules in place (marker) and changes nothing.
    let b = fx.pod("b");
    fx.call("ADD", "c-masq-b", &b, "eth0", &conf).expect_ok();
    assert_eq!(list(), rules);
    assert_eq!(rules.matches("masquerade").count(), 1);
    for (id, pod) in [("c-masq-a", &a), ("c-masq-b", &b)] {
        fx.call("DEL", id, pod, "eth0", &conf).expect_ok();
    }
}
