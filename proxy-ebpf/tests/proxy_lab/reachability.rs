//! The initial dual-stack NodePort service: ClusterIP from both nodes,
//! NodePort from the underlay, IPv6, hairpin, and fast rejects without
//! endpoints.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use capstan_proxy::model::IpFamily;
use capstan_proxy::ProxyEvent;
use libtest_mimic::Failed;

use crate::checks::*;
use crate::common::*;
use crate::suite::*;

pub fn cluster_ip(s: &Suite) -> Result<(), Failed> {
    for client in ["a1", "b2"] {
        let c = s.pod(client);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..60 {
            let (pod, from) = tcp_request(&c.place(), addr(WEB_V4, 80), Duration::from_secs(2))
                .map_err(|e| format!("{client} -> web: {e}"))?;
            if from != IpAddr::V4(c.ip) {
                return Err(
                    format!("pod traffic to a ClusterIP was SNATed: server saw {from}").into(),
                );
            }
            seen.insert(pod);
            if seen.len() == 2 {
                break;
            }
        }
        if seen.len() != 2 {
            return Err(format!("{client} reached only {seen:?}, want a2 and b1").into());
        }
    }
    Ok(())
}

pub fn node_port(s: &Suite) -> Result<(), Failed> {
    for i in 0..2 {
        let node_ip = s.lab.node(i).ip();
        let to = SocketAddr::from((node_ip, 30080));
        let (pod, from) = tcp_request(&s.underlay(), to, Duration::from_secs(2))
            .map_err(|e| format!("underlay -> node {i} NodePort: {e}"))?;
        if !["a2", "b1"].contains(&pod.as_str()) {
            return Err(format!("unexpected answer from {pod}").into());
        }
        if from == IpAddr::V4(s.lab.underlay_ip()) {
            return Err("externalTrafficPolicy Cluster must masquerade".into());
        }
        // From the node itself, to its own address.
        tcp_request(&s.node_place(i), to, Duration::from_secs(2))
            .map_err(|e| format!("node {i} -> own NodePort: {e}"))?;
        // From the other node's address (another node reaching this one).
        tcp_request(&s.node_place(1 - i), to, Duration::from_secs(2))
            .map_err(|e| format!("node {} -> node {i} NodePort: {e}", 1 - i))?;
    }
    Ok(())
}

pub fn no_endpoints_rejects(s: &Suite) -> Result<(), Failed> {
    s.apply(vec![
        ProxyEvent::ServiceApplied(
            Svc::new("empty", &["10.96.0.20"], 80, "TCP")
                .node_port(30020)
                .s,
        ),
        ProxyEvent::ServiceApplied(Svc::new("empty-udp", &["10.96.0.21"], 53, "UDP").s),
    ])?;
    let a1 = s.pod("a1").place();
    let start = Instant::now();
    expect_refused(
        tcp_request(&a1, addr("10.96.0.20", 80), Duration::from_secs(3)),
        start,
        "ClusterIP TCP",
    )?;
    let start = Instant::now();
    let to = SocketAddr::from((s.lab.node(1).ip(), 30020));
    expect_refused(
        tcp_request(&s.underlay(), to, Duration::from_secs(3)),
        start,
        "NodePort TCP",
    )?;
    // UDP: a connected socket sees the ICMP port unreachable as ECONNREFUSED.
    let start = Instant::now();
    let r = a1.run_in(|| {
        let u = std::net::UdpSocket::bind("0.0.0.0:0")?;
        u.connect("10.96.0.21:53")?;
        u.set_read_timeout(Some(Duration::from_secs(3)))?;
        u.send(b"hi")?;
        let mut buf = [0u8; 64];
        u.recv(&mut buf)?;
        Ok((String::new(), IpAddr::from([0, 0, 0, 0])))
    });
    expect_refused(r, start, "ClusterIP UDP")
}

pub fn hairpin(s: &Suite) -> Result<(), Failed> {
    let n1 = s.node_name(0);
    s.apply(vec![
        ProxyEvent::ServiceApplied(Svc::new("hair", &["10.96.0.30"], 80, "TCP").s),
        ProxyEvent::SliceApplied(slice(
            "hair",
            IpFamily::V4,
            TCP_PORT,
            "TCP",
            &[(s.pod("a2"), &n1, true)],
        )),
    ])?;
    let (pod, from) = tcp_request(
        &s.pod("a2").place(),
        addr("10.96.0.30", 80),
        Duration::from_secs(2),
    )
    .map_err(|e| format!("hairpin: {e}"))?;
    if pod != "a2" || from != IpAddr::from([10, 246, 1, 1]) {
        return Err(format!(
            "hairpin: answer from {pod} seeing {from}, want a2 seeing the node's bridge address"
        )
        .into());
    }
    Ok(())
}

pub fn ipv6(s: &Suite) -> Result<(), Failed> {
    let a1 = s.pod("a1");
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..60 {
        let (pod, from) = tcp_request(&a1.place(), addr(WEB_V6, 80), Duration::from_secs(2))
            .map_err(|e| format!("a1 -> [{WEB_V6}]:80: {e}"))?;
        if from != IpAddr::V6(a1.ip6) {
            return Err(format!("v6 ClusterIP traffic was SNATed: {from}").into());
        }
        seen.insert(pod);
        if seen.len() == 2 {
            break;
        }
    }
    if seen.len() != 2 {
        return Err(format!("v6 reached only {seen:?}").into());
    }
    // NodePort on node 1's IPv6 address, from node 2.
    let to = SocketAddr::new(IpAddr::V6(node_ip6(1)), 30080);
    tcp_request(&s.node_place(1), to, Duration::from_secs(2))
        .map_err(|e| format!("v6 NodePort: {e}"))?;
    Ok(())
}
