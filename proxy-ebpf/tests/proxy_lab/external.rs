//! External destinations: externalIPs and load-balancer ingress IPs
//! reached from a client namespace on the underlay whose route to the
//! address points at a node (what a router in front of the cluster does),
//! with externalTrafficPolicy Cluster and Local, IPv4 and IPv6.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use capstan_proxy::model::IpFamily;
use capstan_proxy::ProxyEvent;
use libtest_mimic::Failed;

use crate::checks::*;
use crate::common::*;
use crate::suite::*;

/// An address outside every network of the lab, routed by clients through
/// a node (what a router in front of the cluster does).
const EXT_IP: &str = "203.0.113.10";
const LB_IP: &str = "198.51.100.10";
const LB_LOCAL_IP: &str = "198.51.100.11";

pub fn external_ips(s: &Suite) -> Result<(), Failed> {
    let (n1, n2) = (s.node_name(0), s.node_name(1));
    s.apply(vec![
        ProxyEvent::ServiceApplied(
            Svc::new("ext", &["10.96.0.70"], 80, "TCP")
                .external_ips(&[EXT_IP])
                .s,
        ),
        ProxyEvent::SliceApplied(slice(
            "ext",
            IpFamily::V4,
            TCP_PORT,
            "TCP",
            &[(s.pod("a2"), &n1, true), (s.pod("b1"), &n2, true)],
        )),
    ])?;
    let client = Client::new(&s.lab, "ext", 200)?;
    let client_ip = IpAddr::V4(client.ip);
    // externalTrafficPolicy Cluster: either node takes the traffic, any
    // endpoint answers, and the client is masqueraded (so the answer
    // goes back through the node that NATed it).
    for node in 0..2 {
        client.route_via(EXT_IP, s.lab.node(node).ip())?;
        reach_all(&client.place(), addr(EXT_IP, 80), &["a2", "b1"], |from| {
            if from == client_ip {
                return Err(format!("client {from} not masqueraded"));
            }
            Ok(())
        })
        .map_err(|e| format!("via node {}: {}", node + 1, e.message().unwrap_or_default()))?;
    }
    // A pod reaches the external IP through its own node.
    reach_all(
        &s.pod("b2").place(),
        addr(EXT_IP, 80),
        &["a2", "b1"],
        |_| Ok(()),
    )?;
    // An external IP of a service without endpoints is rejected at once.
    s.apply(vec![ProxyEvent::ServiceApplied(
        Svc::new("ext-empty", &["10.96.0.69"], 80, "TCP")
            .external_ips(&["203.0.113.11"])
            .s,
    )])?;
    client.route_via("203.0.113.11", s.lab.node(0).ip())?;
    let start = Instant::now();
    expect_refused(
        tcp_request(
            &client.place(),
            addr("203.0.113.11", 80),
            Duration::from_secs(3),
        ),
        start,
        "external IP without endpoints",
    )?;
    // Another port on the external IP is not the proxy's business.
    let r = tcp_request(
        &client.place(),
        addr(EXT_IP, 81),
        Duration::from_millis(300),
    );
    if r.is_ok() {
        return Err(format!("port 81 of the external IP answered: {r:?}").into());
    }
    Ok(())
}

pub fn load_balancer(s: &Suite) -> Result<(), Failed> {
    let (n1, n2) = (s.node_name(0), s.node_name(1));
    s.apply(vec![
        ProxyEvent::ServiceApplied(
            Svc::new("lb", &["10.96.0.71"], 80, "TCP")
                .load_balancer(&[LB_IP], 30071)
                .s,
        ),
        ProxyEvent::SliceApplied(slice(
            "lb",
            IpFamily::V4,
            TCP_PORT,
            "TCP",
            &[(s.pod("a2"), &n1, true), (s.pod("b1"), &n2, true)],
        )),
        ProxyEvent::ServiceApplied(
            Svc::new("lb-local", &["10.96.0.72"], 80, "TCP")
                .load_balancer(&[LB_LOCAL_IP], 30072)
                .local(30972)
                .s,
        ),
        ProxyEvent::SliceApplied(slice(
            "lb-local",
            IpFamily::V4,
            TCP_PORT,
            "TCP",
            &[(s.pod("b1"), &n2, true)],
        )),
    ])?;
    let client = Client::new(&s.lab, "lb", 201)?;
    let client_ip = IpAddr::V4(client.ip);
    // Cluster policy: through node 1 to both endpoints, masqueraded.
    client.route_via(LB_IP, s.lab.node(0).ip())?;
    reach_all(&client.place(), addr(LB_IP, 80), &["a2", "b1"], |from| {
        if from == client_ip {
            return Err(format!("client {from} not masqueraded"));
        }
        Ok(())
    })?;
    // Local policy through the node with the endpoint: the server sees
    // the client's own address.
    client.route_via(LB_LOCAL_IP, s.lab.node(1).ip())?;
    reach_all(&client.place(), addr(LB_LOCAL_IP, 80), &["b1"], |from| {
        if from != client_ip {
            return Err(format!("saw {from}, want the client {client_ip}"));
        }
        Ok(())
    })?;
    // Through the node without a local endpoint: dropped, as kube-proxy
    // does (the load balancer's health check steers away from it).
    client.route_via(LB_LOCAL_IP, s.lab.node(0).ip())?;
    expect_dropped(
        &client.place(),
        addr(LB_LOCAL_IP, 80),
        "Local LB IP via node 1",
    )?;
    // Pods on that node still reach the LB IP (cluster-wide endpoints).
    reach_all(&s.pod("a1").place(), addr(LB_LOCAL_IP, 80), &["b1"], |_| {
        Ok(())
    })?;
    // So does the node itself (masqueraded: its source is a local address).
    reach_all(&s.node_place(0), addr(LB_LOCAL_IP, 80), &["b1"], |_| Ok(()))?;
    // And a ClusterIP routed to a node by an outside router: masqueraded,
    // so the answer comes back through that node.
    client.route_via("10.96.0.71", s.lab.node(1).ip())?;
    reach_all(
        &client.place(),
        addr("10.96.0.71", 80),
        &["a2", "b1"],
        |from| {
            if from == client_ip {
                return Err(format!("off-cluster client {from} not masqueraded"));
            }
            Ok(())
        },
    )?;
    Ok(())
}

pub fn local_terminating(s: &Suite) -> Result<(), Failed> {
    const LB_TERM_IP: &str = "198.51.100.12";
    let (n1, n2) = (s.node_name(0), s.node_name(1));
    let mut eps = slice(
        "lb-term",
        IpFamily::V4,
        TCP_PORT,
        "TCP",
        &[(s.pod("a2"), &n1, true), (s.pod("b1"), &n2, false)],
    );
    // b1: not ready, still serving, terminating (a rolling update).
    if let Some(c) = eps.endpoints[1].conditions.as_mut() {
        c.serving = Some(true);
        c.terminating = Some(true);
    }
    s.apply(vec![
        ProxyEvent::ServiceApplied(
            Svc::new("lb-term", &["10.96.0.79"], 80, "TCP")
                .load_balancer(&[LB_TERM_IP], 30079)
                .local(30979)
                .s,
        ),
        ProxyEvent::SliceApplied(eps),
    ])?;
    let client = Client::new(&s.lab, "term", 206)?;
    let client_ip = IpAddr::V4(client.ip);
    let keeps_client = |from: IpAddr| {
        if from != client_ip {
            return Err(format!("saw {from}, want the client {client_ip}"));
        }
        Ok(())
    };
    // Node 2's only local endpoint is terminating: outside traffic still
    // goes there rather than being dropped (kube-proxy does the same).
    client.route_via(LB_TERM_IP, s.lab.node(1).ip())?;
    reach_all(&client.place(), addr(LB_TERM_IP, 80), &["b1"], keeps_client)?;
    client.route_via(LB_TERM_IP, s.lab.node(0).ip())?;
    reach_all(&client.place(), addr(LB_TERM_IP, 80), &["a2"], keeps_client)?;
    // Cluster-wide, a ready endpoint exists: pods never get b1.
    for _ in 0..10 {
        let (pod, _) = tcp_request(
            &s.pod("b2").place(),
            addr("10.96.0.79", 80),
            Duration::from_secs(2),
        )?;
        if pod != "a2" {
            return Err(format!("ClusterIP used the terminating {pod}").into());
        }
    }
    Ok(())
}

pub fn ipv6_external(s: &Suite) -> Result<(), Failed> {
    const EXT6: &str = "2001:db8::77";
    const LB6: &str = "2001:db8::78";
    let (n1, n2) = (s.node_name(0), s.node_name(1));
    let both = [
        (s.pod("a2"), n1.as_str(), true),
        (s.pod("b1"), n2.as_str(), true),
    ];
    s.apply(vec![
        ProxyEvent::ServiceApplied(
            Svc::new("ext6", &["10.96.0.77", "fd00:96::77"], 80, "TCP")
                .external_ips(&[EXT6])
                .s,
        ),
        ProxyEvent::SliceApplied(slice("ext6", IpFamily::V4, TCP_PORT, "TCP", &both)),
        ProxyEvent::SliceApplied(slice("ext6", IpFamily::V6, TCP_PORT, "TCP", &both)),
        ProxyEvent::ServiceApplied(
            Svc::new("lb6", &["fd00:96::78"], 80, "TCP")
                .load_balancer(&[LB6], 30078)
                .local(30978)
                .s,
        ),
        ProxyEvent::SliceApplied(slice(
            "lb6",
            IpFamily::V6,
            TCP_PORT,
            "TCP",
            &[(s.pod("b1"), &n2, true)],
        )),
    ])?;
    let client = Client::new(&s.lab, "v6", 204)?;
    let client_ip = IpAddr::V6(client.ip6);
    client.route_via(EXT6, node_ip6(1))?;
    reach_all(&client.place(), addr(EXT6, 80), &["a2", "b1"], |from| {
        if from == client_ip {
            return Err(format!("client {from} not masqueraded"));
        }
        Ok(())
    })?;
    client.route_via(LB6, node_ip6(2))?;
    reach_all(&client.place(), addr(LB6, 80), &["b1"], |from| {
        if from != client_ip {
            return Err(format!("saw {from}, want the client {client_ip}"));
        }
        Ok(())
    })?;
    client.route_via(LB6, node_ip6(1))?;
    expect_dropped(&client.place(), addr(LB6, 80), "Local v6 LB IP via node 1")?;
    Ok(())
}

pub fn external_local(s: &Suite) -> Result<(), Failed> {
    let n2 = s.node_name(1);
    s.apply(vec![
        ProxyEvent::ServiceApplied(
            Svc::new("local", &["10.96.0.50"], 80, "TCP")
                .node_port(30050)
                .local(30951)
                .s,
        ),
        ProxyEvent::SliceApplied(slice(
            "local",
            IpFamily::V4,
            TCP_PORT,
            "TCP",
            &[(s.pod("b1"), &n2, true)],
        )),
    ])?;
    let underlay_ip = IpAddr::V4(s.lab.underlay_ip());
    let (pod, from) = tcp_request(
        &s.underlay(),
        SocketAddr::from((s.lab.node(1).ip(), 30050)),
        Duration::from_secs(2),
    )
    .map_err(|e| format!("underlay -> node 2 local NodePort: {e}"))?;
    if pod != "b1" || from != underlay_ip {
        return Err(format!(
            "answer from {pod} seeing {from}; want b1 seeing the client {underlay_ip}"
        )
        .into());
    }
    // Node 1 has no local endpoint: external traffic does not get through.
    let r = tcp_request(
        &s.underlay(),
        SocketAddr::from((s.lab.node(0).ip(), 30050)),
        Duration::from_millis(400),
    );
    if r.is_ok() {
        return Err(
            format!("node 1 forwarded external traffic without a local endpoint: {r:?}").into(),
        );
    }
    // Pods on node 1 still reach the service (through the cluster endpoints).
    tcp_request(
        &s.pod("a1").place(),
        SocketAddr::from((s.lab.node(0).ip(), 30050)),
        Duration::from_secs(2),
    )
    .map_err(|e| format!("pod on node 1 -> local NodePort: {e}"))?;
    let c2 = http_status(&s.underlay(), SocketAddr::from((s.lab.node(1).ip(), 30951)))?;
    let c1 = http_status(&s.underlay(), SocketAddr::from((s.lab.node(0).ip(), 30951)))?;
    if (c1, c2) != (503, 200) {
        return Err(format!("health check: node 1 {c1}, node 2 {c2}; want 503, 200").into());
    }
    Ok(())
}
