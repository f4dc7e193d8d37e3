//! Tests of a service port's whole rendering; `pinned.txt` holds the
//! rendering of representative models.

use super::*;
use crate::model::{Endpoint, IpFamily, Protocol, ServiceKey, ServicePortInfo, ServicePortName};
use crate::nft::element::{Key, Value};
use crate::nft::expr::{goto, jump};
use crate::nft::skeleton::{
    endpoints_map, nodeport_endpoints_map, Pick, MARK_FOR_MASQUERADE, NODEPORTS_MAP, REJECT_CHAIN,
    SERVICE_IPS_MAP,
};

fn ctx() -> Context {
    Context {
        family: IpFamily::V4,
        node_name: "n1".into(),
        cluster_cidr: Some(("10.244.0.0".parse().unwrap(), 16)),
    }
}

fn spn() -> ServicePortName {
    ServicePortName {
        service: ServiceKey::new("ns", "web"),
        port_name: "http".into(),
        protocol: Protocol::Tcp,
    }
}

fn info() -> ServicePortInfo {
    ServicePortInfo {
        cluster_ips: vec!["10.96.0.10".parse().unwrap(), "fd00::10".parse().unwrap()],
        port: 80,
        protocol: Protocol::Tcp,
        node_port: Some(30080),
        external_ips: vec![],
        load_balancer_ips: vec![],
        affinity_timeout_s: None,
        external_local: false,
        internal_local: false,
        health_check_node_port: None,
    }
}

fn ep(ip: &str, node: &str) -> Endpoint {
    Endpoint {
        ip: ip.parse().unwrap(),
        port: 8080,
        ready: true,
        serving: true,
        terminating: false,
        node_name: Some(node.into()),
    }
}

fn dest(ip: &str) -> Key {
    Key::Dest {
        addr: ip.parse().unwrap(),
        proto: Protocol::Tcp,
        port: 80,
    }
}

#[test]
fn shared_service_is_elements_only() {
    let r = render_port(
        &ctx(),
        &spn(),
        &info(),
        &[ep("10.244.1.2", "n1"), ep("10.244.2.2", "n2")],
    );
    assert!(r.chains.is_empty() && r.sets.is_empty(), "{r:?}");
    let picks: Vec<String> = r.picks.iter().map(Pick::chain).collect();
    assert_eq!(picks, vec!["pick-cluster-tcp-2", "pick-nodeport-tcp-2"]);
    assert_eq!(
        r.elements[&(SERVICE_IPS_MAP, dest("10.96.0.10"))],
        Value::Goto("pick-cluster-tcp-2".into())
    );
    let np = Key::NodePort {
        proto: Protocol::Tcp,
        port: 30080,
    };
    assert_eq!(
        r.elements[&(NODEPORTS_MAP, np)],
        Value::Goto("pick-nodeport-tcp-2".into())
    );
    let slots: Vec<String> = r
        .elements
        .iter()
        .filter(|((m, _), _)| *m == endpoints_map(Protocol::Tcp))
        .map(|((_, k), v)| format!("{k} : {v}"))
        .collect();
    assert_eq!(
        slots,
        vec![
            "10.96.0.10 . tcp . 80 . 0 : 10.244.1.2 . 8080",
            "10.96.0.10 . tcp . 80 . 1 : 10.244.2.2 . 8080",
        ]
    );
    assert_eq!(
        r.elements
            .keys()
            .filter(|(m, _)| *m == nodeport_endpoints_map(Protocol::Tcp))
            .count(),
        2
    );
    assert_eq!(r.hairpin.len(), 2);
    // The v6 cluster IP is not in the v4 rendering.
    assert!(!r
        .elements
        .keys()
        .any(|(_, k)| k.to_string().contains("fd00")));
}

#[test]
fn internal_local_without_local_endpoints_drops() {
    let mut i = info();
    i.internal_local = true;
    let r = render_port(&ctx(), &spn(), &i, &[ep("10.244.2.2", "n2")]);
    assert_eq!(
        r.elements[&(SERVICE_IPS_MAP, dest("10.96.0.10"))],
        Value::Drop
    );
    assert!(!r
        .elements
        .keys()
        .any(|(m, _)| *m == endpoints_map(Protocol::Tcp)));
    // The NodePort is external traffic: every endpoint, not only local.
    let picks: Vec<String> = r.picks.iter().map(Pick::chain).collect();
    assert_eq!(picks, vec!["pick-nodeport-tcp-1"]);
    assert_eq!(
        r.elements
            .keys()
            .filter(|(m, _)| *m == nodeport_endpoints_map(Protocol::Tcp))
            .count(),
        1
    );
    // Without any external destination it still drops (not rejects).
    i.node_port = None;
    let r = render_port(&ctx(), &spn(), &i, &[ep("10.244.2.2", "n2")]);
    assert_eq!(
        r.elements[&(SERVICE_IPS_MAP, dest("10.96.0.10"))],
        Value::Drop
    );
    assert!(!r.elements.keys().any(|(m, _)| m.starts_with("no-endpoint")));
}

#[test]
fn internal_local_does_not_narrow_external_traffic_with_own_chains() {
    let mut i = info();
    i.internal_local = true;
    i.affinity_timeout_s = Some(7);
    let r = render_port(
        &ctx(),
        &spn(),
        &i,
        &[ep("10.244.1.2", "n1"), ep("10.244.2.2", "n2")],
    );
    let svc = &r.chains[&chain_name("service", "ns/web/tcp/http")];
    assert!(!svc.iter().any(|rule| rule.contains("10.244.2.2")));
    let cluster = chain_name("cluster", "ns/web/tcp/http");
    let ext = &r.chains[&chain_name("external", "ns/web/tcp/http")];
    assert_eq!(ext.last(), Some(&goto(&cluster)));
    // Both endpoints' chains are picked from the cluster chain.
    let gotos = r.chains[&cluster]
        .iter()
        .filter(|rule| rule.contains("goto endpoint-"))
        .count();
    assert_eq!(gotos, 4, "{:?}", r.chains[&cluster]);
}

#[test]
fn no_endpoints_rejects() {
    let r = render_port(&ctx(), &spn(), &info(), &[]);
    assert!(r.elements.keys().all(|(m, _)| m.starts_with("no-endpoint")));
    assert!(r
        .elements
        .values()
        .all(|v| v == &Value::Goto(REJECT_CHAIN.into())));
    assert_eq!(r.elements.len(), 2);
}

#[test]
fn external_local_uses_only_local_endpoints() {
    let mut i = info();
    i.external_local = true;
    let r = render_port(
        &ctx(),
        &spn(),
        &i,
        &[ep("10.244.1.2", "n1"), ep("10.244.2.2", "n2")],
    );
    let local = &r.chains[&chain_name("local", "ns/web/tcp/http")];
    assert_eq!(local.len(), 1);
    assert!(local[0].contains("10.244.1.2"));
    let ext = &r.chains[&chain_name("external", "ns/web/tcp/http")];
    assert!(
        !ext.iter().any(|rule| rule == &jump(MARK_FOR_MASQUERADE)),
        "no SNAT from outside"
    );
}

#[test]
fn affinity_adds_sets_and_sticky_rules() {
    let mut i = info();
    i.affinity_timeout_s = Some(7);
    let r = render_port(&ctx(), &spn(), &i, &[ep("10.244.1.2", "n1")]);
    assert_eq!(r.sets.values().copied().collect::<Vec<_>>(), vec![7]);
    let svc = &r.chains[&chain_name("service", "ns/web/tcp/http")];
    assert!(svc
        .iter()
        .any(|rule| rule.starts_with("ip saddr @affinity-")));
    let ep_chain = r
        .chains
        .keys()
        .find(|c| c.starts_with("endpoint-"))
        .unwrap();
    assert!(r.chains[ep_chain][0].starts_with("update @affinity-"));
    assert!(r.chains[ep_chain][0].ends_with("{ ip saddr }"));
}

/// Every part of a rendering as text, in a fixed order.
fn dump(r: &Rendered) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    for (chain, rules) in &r.chains {
        writeln!(s, "chain {chain}").unwrap();
        for rule in rules {
            writeln!(s, "  {rule}").unwrap();
        }
    }
    for (set, timeout) in &r.sets {
        writeln!(s, "set {set} timeout {timeout}").unwrap();
    }
    for ((map, key), value) in &r.elements {
        writeln!(s, "element {map} {key} : {value}").unwrap();
    }
    for ip in &r.hairpin {
        writeln!(s, "hairpin {ip}").unwrap();
    }
    for pick in &r.picks {
        writeln!(s, "pick {}", pick.chain()).unwrap();
    }
    s
}

/// Models covering each way a service renders: shared (with external
/// and load-balancer IPs, UDP, v6), rejecting, affinity, both traffic
/// policies Local, terminating fallback, and no pod network known.
fn pinned_models() -> Vec<(&'static str, Context, ServicePortInfo, Vec<Endpoint>)> {
    let two = vec![ep("10.244.1.2", "n1"), ep("10.244.2.2", "n2")];
    let mut shared = info();
    shared.external_ips = vec!["192.0.2.7".parse().unwrap()];
    shared.load_balancer_ips = vec![
        "198.51.100.9".parse().unwrap(),
        "2001:db8::9".parse().unwrap(),
    ];
    let mut udp = info();
    udp.protocol = Protocol::Udp;
    udp.node_port = None;
    let mut affinity = shared.clone();
    affinity.affinity_timeout_s = Some(10800);
    let mut affinity_internal_local = affinity.clone();
    affinity_internal_local.internal_local = true;
    let mut external_local = shared.clone();
    external_local.external_local = true;
    external_local.health_check_node_port = Some(31000);
    let mut terminating = ep("10.244.1.3", "n1");
    terminating.ready = false;
    terminating.terminating = true;
    let mut both_local = external_local.clone();
    both_local.internal_local = true;
    let mut v6 = ctx();
    v6.family = IpFamily::V6;
    v6.cluster_cidr = Some(("fd00:244::".parse().unwrap(), 48));
    let mut no_cidr = ctx();
    no_cidr.cluster_cidr = None;
    // The v4 endpoint must not appear in the v6 rendering.
    let v6_eps = vec![
        ep("fd00:244:1::2", "n1"),
        ep("10.244.1.2", "n1"),
        ep("fd00:244:2::2", "n2"),
    ];
    let mut internal_local = shared.clone();
    internal_local.internal_local = true;
    vec![
        ("shared", ctx(), shared.clone(), two.clone()),
        ("shared udp", ctx(), udp, two.clone()),
        ("shared reject", ctx(), shared.clone(), vec![]),
        (
            "shared internal local remote only",
            ctx(),
            internal_local,
            vec![ep("10.244.2.2", "n2")],
        ),
        ("shared v6", v6.clone(), shared.clone(), v6_eps.clone()),
        ("affinity", ctx(), affinity.clone(), two.clone()),
        ("affinity reject", ctx(), affinity.clone(), vec![]),
        (
            "affinity internal local",
            ctx(),
            affinity_internal_local,
            two.clone(),
        ),
        ("external local", ctx(), external_local.clone(), two.clone()),
        (
            "external local terminating",
            ctx(),
            external_local.clone(),
            vec![terminating, ep("10.244.2.2", "n2")],
        ),
        (
            "external local no cidr",
            no_cidr,
            external_local.clone(),
            two.clone(),
        ),
        ("external local v6", v6, external_local, v6_eps),
        (
            "both local remote only",
            ctx(),
            both_local,
            vec![ep("10.244.2.2", "n2")],
        ),
    ]
}

/// Pins the whole rendering of the models above, so that moving or
/// restructuring this code is shown not to change what is programmed.
#[test]
fn rendering_is_pinned() {
    let mut got = String::new();
    for (name, ctx, info, eps) in pinned_models() {
        got.push_str(&format!("## {name}\n"));
        got.push_str(&dump(&render_port(&ctx, &spn(), &info, &eps)));
    }
    if got != include_str!("pinned.txt") {
        panic!("rendering changed; now:\n{got}");
    }
}

#[test]
fn v6_renders_only_v6() {
    let mut c = ctx();
    c.family = IpFamily::V6;
    c.cluster_cidr = Some(("fd00:244::".parse().unwrap(), 48));
    let r = render_port(
        &c,
        &spn(),
        &info(),
        &[ep("10.244.1.2", "n1"), ep("fd00:244:1::2", "n1")],
    );
    assert_eq!(
        r.elements[&(SERVICE_IPS_MAP, dest("fd00::10"))],
        Value::Goto("pick-cluster-tcp-1".into())
    );
    let slot = Key::DestSlot {
        addr: "fd00::10".parse().unwrap(),
        proto: Protocol::Tcp,
        port: 80,
        slot: 0,
    };
    assert_eq!(
        r.elements[&(endpoints_map(Protocol::Tcp), slot)],
        Value::Target("fd00:244:1::2".parse().unwrap(), 8080)
    );
    assert_eq!(r.hairpin.len(), 1);
    assert!(r.hairpin.iter().all(|ip| ip.is_ipv6()));
}
