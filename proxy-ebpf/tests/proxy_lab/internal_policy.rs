//! internalTrafficPolicy Local: ClusterIP traffic stays on the node (or is
//! dropped), external traffic does not.

use std::net::SocketAddr;
use std::time::Duration;

use capstan_proxy::model::IpFamily;
use capstan_proxy::ProxyEvent;
use libtest_mimic::Failed;

use crate::checks::*;
use crate::common::*;
use crate::suite::*;

pub fn internal_local(s: &Suite) -> Result<(), Failed> {
    let (n1, n2) = (s.node_name(0), s.node_name(1));
    // With a NodePort: internalTrafficPolicy governs only ClusterIP
    // traffic; external traffic follows externalTrafficPolicy (Cluster).
    let svc = Svc::new("itl", &["10.96.0.73"], 80, "TCP")
        .internal_local()
        .node_port(30073)
        .s;
    s.apply(vec![
        ProxyEvent::ServiceApplied(svc),
        ProxyEvent::SliceApplied(slice(
            "itl",
            IpFamily::V4,
            TCP_PORT,
            "TCP",
            &[(s.pod("a2"), &n1, true), (s.pod("b1"), &n2, true)],
        )),
    ])?;
    let to = addr("10.96.0.73", 80);
    // Each node's pods (and the node itself) only ever reach the local one.
    for _ in 0..10 {
        for (place, want) in [
            (s.pod("a1").place(), "a2"),
            (s.node_place(0), "a2"),
            (s.pod("b2").place(), "b1"),
            (s.node_place(1), "b1"),
        ] {
            let (pod, _) = tcp_request(&place, to, Duration::from_secs(2))?;
            if pod != want {
                return Err(
                    format!("internalTrafficPolicy Local: {pod} answered, want {want}").into(),
                );
            }
        }
    }
    // No endpoint left on node 2: its pods' traffic is dropped (not sent
    // to node 1's endpoint, not rejected).
    s.apply(vec![ProxyEvent::SliceApplied(slice(
        "itl",
        IpFamily::V4,
        TCP_PORT,
        "TCP",
        &[(s.pod("a2"), &n1, true)],
    ))])?;
    expect_dropped(&s.pod("b2").place(), to, "pod on node 2")?;
    expect_dropped(&s.node_place(1), to, "node 2 itself")?;
    let (pod, _) = tcp_request(&s.pod("a1").place(), to, Duration::from_secs(2))?;
    if pod != "a2" {
        return Err(format!("node 1 answered by {pod}").into());
    }
    // Node 2's NodePort still forwards outside clients to a2 on node 1.
    let node_port = SocketAddr::from((s.lab.node(1).ip(), 30073));
    let (pod, _) = tcp_request(&s.underlay(), node_port, Duration::from_secs(2))
        .map_err(|e| format!("underlay -> node 2 NodePort: {e}"))?;
    if pod != "a2" {
        return Err(format!("node 2 NodePort answered by {pod}").into());
    }
    // Without any external destination it is dropped too, not rejected.
    s.apply(vec![
        ProxyEvent::ServiceApplied(
            Svc::new("itl-plain", &["10.96.0.67"], 80, "TCP")
                .internal_local()
                .s,
        ),
        ProxyEvent::SliceApplied(slice(
            "itl-plain",
            IpFamily::V4,
            TCP_PORT,
            "TCP",
            &[(s.pod("a2"), &n1, true)],
        )),
    ])?;
    expect_dropped(
        &s.pod("b2").place(),
        addr("10.96.0.67", 80),
        "ClusterIP-only: pod on node 2",
    )?;
    // The same with session affinity (a service with chains of its own).
    s.apply(vec![
        ProxyEvent::ServiceApplied(
            Svc::new("itl-sticky", &["10.96.0.68"], 80, "TCP")
                .internal_local()
                .node_port(30068)
                .affinity(60)
                .s,
        ),
        ProxyEvent::SliceApplied(slice(
            "itl-sticky",
            IpFamily::V4,
            TCP_PORT,
            "TCP",
            &[(s.pod("a2"), &n1, true)],
        )),
    ])?;
    expect_dropped(
        &s.pod("b2").place(),
        addr("10.96.0.68", 80),
        "affinity: pod on node 2",
    )?;
    let node_port = SocketAddr::from((s.lab.node(1).ip(), 30068));
    let (pod, _) = tcp_request(&s.underlay(), node_port, Duration::from_secs(2))
        .map_err(|e| format!("affinity: underlay -> node 2 NodePort: {e}"))?;
    if pod != "a2" {
        return Err(format!("affinity: node 2 NodePort answered by {pod}").into());
    }
    Ok(())
}
