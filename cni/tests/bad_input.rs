//! Bad input gets the spec's error JSON on stdout (right code, a msg and
//! details a person can act on), a non-zero exit, and leaves nothing
//! behind: no veth, no reserved address.

mod common;

use std::path::Path;

use common::*;
use serde_json::json;

/// After a failed call: nothing reserved, no veth, stdout only the error.
fn assert_clean(fx: &Fixture, a: &Answer) {
    let v = a.json();
    assert!(
        v["details"].as_str().is_some_and(|d| !d.is_empty()),
        "details missing: {v}"
    );
    assert!(v["cniVersion"].is_string(), "{v}");
    assert!(
        fx.reservations().is_empty(),
        "reserved: {:?}",
        fx.reservations()
    );
    assert!(fx.node_veths().is_empty(), "veths: {:?}", fx.node_veths());
    assert!(!a.stderr.contains("panicked"), "panic: {}", a.stderr);
}

#[test]
fn malformed_json_is_code_6() {
    if !may_run("malformed_json_is_code_6") {
        return;
    }
    let fx = Fixture::new();
    let pod = fx.pod("pod");
    let netns = pod.display().to_string();
    for stdin in [
        &b"{\"cniVersion\": \"1.1.0\", "[..],
        b"",
        b"[1,2]",
        b"\xff\xfe",
    ] {
        let a = fx.exec(
            Path::new(PLUGIN),
            &[
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "c"),
                ("CNI_NETNS", &netns),
                ("CNI_IFNAME", "eth0"),
            ],
            stdin,
        );
        assert_eq!(a.code(), 6, "{}", a.stdout);
        assert_clean(&fx, &a);
    }
}

#[test]
fn missing_or_invalid_variables_are_code_4() {
    if !may_run("missing_or_invalid_variables_are_code_4") {
        return;
    }
    let fx = Fixture::new();
    fx.write_subnet_file(SUBNET_V4);
    let pod = fx.pod("pod");
    let netns = pod.display().to_string();
    let conf = fx.conf("1.1.0").to_string();
    let full = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c-env"),
        ("CNI_NETNS", netns.as_str()),
        ("CNI_IFNAME", "eth0"),
    ];
    for skip in 0..full.len() {
        let env: Vec<_> = full
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, kv)| *kv)
            .collect();
        let a = fx.exec(Path::new(PLUGIN), &env, conf.as_bytes());
        assert_eq!(a.code(), 4, "without {}: {}", full[skip].0, a.stdout);
        assert!(
            a.stdout.contains(full[skip].0),
            "the error names the variable: {}",
            a.stdout
        );
        assert_clean(&fx, &a);
    }
    for (var, bad) in [
        ("CNI_COMMAND", "FROB"),
        ("CNI_IFNAME", "eth0/1"),
        ("CNI_CONTAINERID", "-bad"),
    ] {
        let env: Vec<_> = full
            .iter()
            .map(|(k, v)| if *k == var { (*k, bad) } else { (*k, *v) })
            .collect();
        let a = fx.exec(Path::new(PLUGIN), &env, conf.as_bytes());
        assert_eq!(a.code(), 4, "{var}={bad}: {}", a.stdout);
        assert_clean(&fx, &a);
    }
}

#[test]
fn unknown_cni_version_is_code_1() {
    if !may_run("unknown_cni_version_is_code_1") {
        return;
    }
    let fx = Fixture::new();
    fx.write_subnet_file(SUBNET_V4);
    let pod = fx.pod("pod");
    for version in ["0.2.0", "2.0.0", "banana"] {
        let a = fx.call("ADD", "c-ver", &pod, "eth0", &fx.conf(version));
        assert_eq!(a.code(), 1, "{version}: {}", a.stdout);
        assert!(
            a.stdout.contains("1.1.0"),
            "details list what is supported: {}",
            a.stdout
        );
        assert_clean(&fx, &a);
    }
    let mut conf = fx.conf("1.1.0");
    conf.as_object_mut().map(|o| o.remove("cniVersion"));
    assert_eq!(fx.call("ADD", "c-ver", &pod, "eth0", &conf).code(), 1);
}

#[test]
fn invalid_config_is_code_7() {
    if !may_run("invalid_config_is_code_7") {
        return;
    }
    let fx = Fixture::new();
    let pod = fx.pod("pod");
    for (key, value) in [
        ("subnet", json!("10.1.0.0/24")),
        ("subnet", json!("not-a-cidr")),
        ("bridge", json!("this-name-is-far-too-long")),
        ("mtu", json!("big")),
        ("name", json!(17)),
    ] {
        let mut conf = fx.conf("1.1.0");
        conf[key] = value.clone();
        let a = fx.call("ADD", "c-conf", &pod, "eth0", &conf);
        assert_eq!(a.code(), 7, "{key}={value}: {}", a.stdout);
        assert_clean(&fx, &a);
    }
    // A subnet file that is not there yet: the agent has not leased a
    // subnet; the runtime should retry.
    let a = fx.call("ADD", "c-conf", &pod, "eth0", &fx.conf("1.1.0"));
    assert_eq!(a.code(), 11, "{}", a.stdout);
    assert!(a.stdout.contains("capstan-agent"), "{}", a.stdout);
    assert_clean(&fx, &a);
    fx.write_subnet_file("CAPSTAN_SUBNET=nonsense\n");
    let a = fx.call("ADD", "c-conf", &pod, "eth0", &fx.conf("1.1.0"));
    assert_eq!(a.code(), 7, "{}", a.stdout);
    assert!(a.stdout.contains("line 1"), "{}", a.stdout);
}

#[test]
fn unreachable_netns_is_code_3() {
    if !may_run("unreachable_netns_is_code_3") {
        return;
    }
    let fx = Fixture::new();
    fx.write_subnet_file(SUBNET_V4);
    let conf = fx.conf("1.1.0");
    let a = fx.call(
        "ADD",
        "c-nons",
        Path::new("/run/netns/capstan-does-not-exist"),
        "eth0",
        &conf,
    );
    assert_eq!(a.code(), 3, "{}", a.stdout);
    assert_clean(&fx, &a);
    // A path that exists but is not a network namespace: the reservation
    // made before setns fails must be rolled back.
    let not_ns = fx.dir.join("not-a-netns");
    std::fs::write(&not_ns, "").expect("write");
    let a = fx.call("ADD", "c-nons", &not_ns, "eth0", &conf);
    assert!(!a.ok, "{}", a.stdout);
    assert_clean(&fx, &a);
}

#[test]
fn exhausted_subnet_is_code_100_and_leaves_nothing() {
    if !may_run("exhausted_subnet_is_code_100_and_leaves_nothing") {
        return;
    }
    let fx = Fixture::new();
    // A /29 has 6 hosts, one is the gateway: 5 pods fit.
    fx.write_subnet_file("CAPSTAN_SUBNET=10.50.0.1/29\n");
    let conf = fx.conf("1.1.0");
    let mut pods = Vec::new();
    for i in 0..5 {
        let pod = fx.pod(&format!("p{i}"));
        fx.call("ADD", &format!("c-full-{i}"), &pod, "eth0", &conf)
            .expect_ok();
        pods.push(pod);
    }
    let extra = fx.pod("extra");
    let a = fx.call("ADD", "c-full-extra", &extra, "eth0", &conf);
    assert_eq!(a.code(), 100, "{}", a.stdout);
    assert!(
        a.stdout.contains("10.50.0.0/29"),
        "names the pool: {}",
        a.stdout
    );
    assert_eq!(fx.reservations().len(), 5);
    assert_eq!(fx.node_veths().len(), 5);
    assert!(!ip_in(&ns_name(&extra), &["link"]).contains("eth0"));
    for (i, pod) in pods.iter().enumerate() {
        fx.call("DEL", &format!("c-full-{i}"), pod, "eth0", &conf)
            .expect_ok();
    }
    assert!(fx.reservations().is_empty());
    assert!(fx.node_veths().is_empty());
}

#[test]
fn interface_name_taken_in_the_pod_rolls_back() {
    if !may_run("interface_name_taken_in_the_pod_rolls_back") {
        return;
    }
    let fx = Fixture::new();
    fx.write_subnet_file(SUBNET_V4);
    let pod = fx.pod("pod");
    let conf = fx.conf("1.1.0");
    fx.call("ADD", "c-first", &pod, "eth0", &conf).expect_ok();
    let a = fx.call("ADD", "c-second", &pod, "eth0", &conf);
    assert!(!a.ok);
    assert!(a.stdout.contains("eth0"), "{}", a.stdout);
    assert_eq!(
        fx.reservations().len(),
        1,
        "the failed ADD released its address"
    );
    assert_eq!(fx.node_veths().len(), 1);
    fx.call("DEL", "c-first", &pod, "eth0", &conf).expect_ok();
    assert!(fx.reservations().is_empty());
}

#[test]
fn unreadable_prev_result_fails_add_but_not_del() {
    if !may_run("unreadable_prev_result_fails_add_but_not_del") {
        return;
    }
    let fx = Fixture::new();
    fx.write_subnet_file(SUBNET_V4);
    let pod = fx.pod("pod");
    let conf = fx.conf("1.0.0");
    let garbage = with_prev(&conf, &json!({"ips": "not-a-list"}));
    let a = fx.call("ADD", "c-prev", &pod, "eth0", &garbage);
    assert_eq!(a.code(), 7, "{}", a.stdout);
    assert_clean(&fx, &a);

    fx.call("ADD", "c-prev", &pod, "eth0", &conf).expect_ok();
    assert_eq!(fx.reservations().len(), 1);
    // The config was since edited into something invalid, and the runtime
    // hands back junk: DEL still cleans up.
    let mut broken = garbage.clone();
    broken["subnet"] = json!("nonsense");
    fx.call("DEL", "c-prev", &pod, "eth0", &broken).expect_ok();
    assert!(fx.reservations().is_empty());
    assert!(fx.node_veths().is_empty());
}
