//! UDP and conntrack: the proxy deletes flows that would keep a client's
//! socket away from the right endpoint; IPv6 UDP and reject.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use capstan_proxy::model::IpFamily;
use capstan_proxy::ProxyEvent;
use libtest_mimic::Failed;

use crate::checks::*;
use crate::common::*;
use crate::suite::*;

/// Node 1's UDP conntrack entries of service dns2 NATed to `endpoint`.
fn udp_flows_to(s: &Suite, endpoint: IpAddr) -> Result<Vec<String>, Failed> {
    // conntrack -L exits 0 with an empty list; the summary goes to stderr.
    let out = run(s
        .lab
        .node(0)
        .command("conntrack")
        .map_err(|e| e.to_string())?
        .args(["-L", "-p", "udp", "--reply-src", &endpoint.to_string()]))?;
    Ok(out
        .lines()
        .filter(|l| l.contains("dst=10.96.0.76 ") || l.contains("dport=30076 "))
        .map(str::to_string)
        .collect())
}

pub fn udp_conntrack_cleared(s: &Suite) -> Result<(), Failed> {
    let (n1, n2) = (s.node_name(0), s.node_name(1));
    s.apply(vec![
        ProxyEvent::ServiceApplied(
            Svc::new("dns2", &["10.96.0.76"], 53, "UDP")
                .node_port(30076)
                .s,
        ),
        ProxyEvent::SliceApplied(slice(
            "dns2",
            IpFamily::V4,
            UDP_PORT,
            "UDP",
            &[(s.pod("a2"), &n1, true), (s.pod("b1"), &n2, true)],
        )),
    ])?;
    // Flows to the ClusterIP (from a pod) and to the NodePort (from outside)
    // until both endpoints have one on node 1.
    let client = Client::new(&s.lab, "udp", 203)?;
    let node_port = SocketAddr::from((s.lab.node(0).ip(), 30076));
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let pod_sock = udp_socket(&s.pod("a1").place(), false);
        let (p1, _) = udp_ask(&pod_sock, addr("10.96.0.76", 53))?;
        let ext_sock = udp_socket(&client.place(), false);
        let (p2, _) = udp_ask(&ext_sock, node_port)?;
        seen.insert(format!("cluster-{p1}"));
        seen.insert(format!("nodeport-{p2}"));
        if seen.len() == 4 {
            break;
        }
    }
    if seen.len() != 4 {
        return Err(format!("flows to both endpoints not made: {seen:?}").into());
    }
    let a2 = IpAddr::V4(s.pod("a2").ip);
    let b1 = IpAddr::V4(s.pod("b1").ip);
    let before = udp_flows_to(s, a2)?;
    if !before.iter().any(|l| l.contains("dport=30076"))
        || !before.iter().any(|l| l.contains("dst=10.96.0.76"))
    {
        return Err(format!("expected ClusterIP and NodePort flows to a2: {before:?}").into());
    }
    // a2 goes away: its entries go with the sync; b1's stay.
    s.apply(vec![ProxyEvent::SliceApplied(slice(
        "dns2",
        IpFamily::V4,
        UDP_PORT,
        "UDP",
        &[(s.pod("b1"), &n2, true)],
    ))])?;
    let after = udp_flows_to(s, a2)?;
    if !after.is_empty() {
        return Err(format!("flows to the removed endpoint remain: {after:?}").into());
    }
    if udp_flows_to(s, b1)?.is_empty() {
        return Err("flows to the remaining endpoint were deleted too".into());
    }
    Ok(())
}

/// Node 1's UDP conntrack entries matching `filter` (conntrack -L args).
fn udp_flows(s: &Suite, filter: &[&str]) -> Result<usize, Failed> {
    let out = run(s
        .lab
        .node(0)
        .command("conntrack")
        .map_err(|e| e.to_string())?
        .args(["-L", "-p", "udp"])
        .args(filter))?;
    Ok(out.lines().count())
}

pub fn udp_before_service(s: &Suite) -> Result<(), Failed> {
    const EARLY_EXT: &str = "203.0.113.21";
    let client = Client::new(&s.lab, "early", 205)?;
    client.route_via(EARLY_EXT, s.lab.node(0).ip())?;
    let node_port = SocketAddr::from((s.lab.node(0).ip(), 30077));
    let ext = addr(EARLY_EXT, 53);
    // A client that starts before the service exists (a resolver retrying
    // with one socket): node 1 records its flows un-NATed, to itself (the
    // NodePort) and onwards to the underlay (the external IP, which
    // drops it: the underlay has no route for it).
    let sock = udp_socket(&client.place(), false);
    sock.send_to(b"hi", node_port)?;
    sock.send_to(b"hi", ext)?;
    wait_for(
        "node 1 to record the early flows",
        Duration::from_secs(2),
        || {
            let np = udp_flows(s, &["--orig-port-dst", "30077"]).ok()?;
            let ex = udp_flows(s, &["--orig-dst", EARLY_EXT]).ok()?;
            (np > 0 && ex > 0).then_some(())
        },
    )?;
    let n2 = s.node_name(1);
    s.apply(vec![
        ProxyEvent::ServiceApplied(
            Svc::new("early", &["10.96.0.78"], 53, "UDP")
                .node_port(30077)
                .external_ips(&[EARLY_EXT])
                .s,
        ),
        ProxyEvent::SliceApplied(slice(
            "early",
            IpFamily::V4,
            UDP_PORT,
            "UDP",
            &[(s.pod("b1"), &n2, true)],
        )),
    ])?;
    // Same socket, same 5-tuples: only cleared entries let them reach b1.
    for (to, what) in [(node_port, "NodePort"), (ext, "external IP")] {
        let (pod, _) =
            udp_ask(&sock, to).map_err(|e| format!("{what} after the service appeared: {e}"))?;
        if pod != "b1" {
            return Err(format!("{what}: answer from {pod}").into());
        }
    }
    Ok(())
}

pub fn ipv6_udp_and_reject(s: &Suite) -> Result<(), Failed> {
    let (n1, n2) = (s.node_name(0), s.node_name(1));
    s.apply(vec![
        ProxyEvent::ServiceApplied(Svc::new("dns6", &["fd00:96::53"], 53, "UDP").s),
        ProxyEvent::SliceApplied(slice(
            "dns6",
            IpFamily::V6,
            UDP_PORT,
            "UDP",
            &[(s.pod("a2"), &n1, true)],
        )),
        ProxyEvent::ServiceApplied(Svc::new("empty6", &["fd00:96::20"], 80, "TCP").s),
    ])?;
    let a1 = s.pod("a1");
    let sock = udp_socket(&a1.place(), true);
    let to = addr("fd00:96::53", 53);
    let (pod, from) = udp_ask(&sock, to).map_err(|e| format!("v6 udp before: {e}"))?;
    if pod != "a2" || from != IpAddr::V6(a1.ip6) {
        return Err(format!("v6 udp answered by {pod} seeing {from}").into());
    }
    s.apply(vec![ProxyEvent::SliceApplied(slice(
        "dns6",
        IpFamily::V6,
        UDP_PORT,
        "UDP",
        &[(s.pod("b1"), &n2, true)],
    ))])?;
    // Same socket: only the cleared IPv6 conntrack entry lets it move.
    let (pod, _) = udp_ask(&sock, to).map_err(|e| format!("v6 udp after: {e}"))?;
    if pod != "b1" {
        return Err(format!("after the change v6 udp still went to {pod}").into());
    }
    let start = Instant::now();
    expect_refused(
        tcp_request(&a1.place(), addr("fd00:96::20", 80), Duration::from_secs(3)),
        start,
        "v6 ClusterIP without endpoints",
    )
}

pub fn udp_endpoint_change(s: &Suite) -> Result<(), Failed> {
    let (n1, n2) = (s.node_name(0), s.node_name(1));
    s.apply(vec![
        ProxyEvent::ServiceApplied(Svc::new("dns", &["10.96.0.53"], 53, "UDP").s),
        ProxyEvent::SliceApplied(slice(
            "dns",
            IpFamily::V4,
            UDP_PORT,
            "UDP",
            &[(s.pod("a2"), &n1, true)],
        )),
    ])?;
    let sock = udp_socket(&s.pod("a1").place(), false);
    let to = addr("10.96.0.53", 53);
    let (pod, _) = udp_ask(&sock, to).map_err(|e| format!("udp before: {e}"))?;
    if pod != "a2" {
        return Err(format!("udp answered by {pod}").into());
    }
    s.apply(vec![ProxyEvent::SliceApplied(slice(
        "dns",
        IpFamily::V4,
        UDP_PORT,
        "UDP",
        &[(s.pod("b1"), &n2, true)],
    ))])?;
    // Same socket, same 5-tuple: only a cleared conntrack entry lets it
    // reach the new endpoint (a2 still answers if the old flow survives).
    let (pod, _) = udp_ask(&sock, to).map_err(|e| format!("udp after: {e}"))?;
    if pod != "b1" {
        return Err(format!("after the change udp still went to {pod}").into());
    }
    Ok(())
}
