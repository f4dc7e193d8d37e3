//! Ports and protocols: named target ports resolved per slice, SCTP as
//! raw packets (the lab kernel has no SCTP sockets).

use std::net::SocketAddr;
use std::time::Duration;

use capstan_proxy::model::IpFamily;
use capstan_proxy::{Place, ProxyEvent};
use libtest_mimic::Failed;

use crate::checks::*;
use crate::common::*;
use crate::suite::*;

pub fn named_ports(s: &Suite) -> Result<(), Failed> {
    use k8s_openapi::api::core::v1::ServicePort;
    use k8s_openapi::api::discovery::v1::EndpointPort;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let (n1, n2) = (s.node_name(0), s.node_name(1));
    // b2 serves "serve" on another port number than a2 does: what a named
    // target port is for. Its 8080 server answers "b2", this one "b2@9090".
    start_tcp_server_on(s.pod("b2"), 9090, "b2@9090");
    let mut svc = Svc::new("named", &["10.96.0.74"], 80, "TCP").s;
    if let Some(ports) = svc.spec.as_mut().and_then(|s| s.ports.as_mut()) {
        ports.push(ServicePort {
            name: Some("dns".into()),
            port: 53,
            protocol: Some("UDP".into()),
            target_port: Some(IntOrString::String("dns".into())),
            ..Default::default()
        });
    }
    let port = |name: &str, number: u16, protocol: &str| EndpointPort {
        name: Some(name.into()),
        port: Some(i32::from(number)),
        protocol: Some(protocol.into()),
        ..Default::default()
    };
    // As the EndpointSlice controller writes them: one slice per set of
    // resolved port numbers.
    let mut a = slice(
        "named",
        IpFamily::V4,
        TCP_PORT,
        "TCP",
        &[(s.pod("a2"), &n1, true)],
    );
    a.metadata.name = Some("named-a".into());
    a.ports = Some(vec![
        port("dns", UDP_PORT, "UDP"),
        port("p", TCP_PORT, "TCP"),
    ]);
    let mut b = slice(
        "named",
        IpFamily::V4,
        9090,
        "TCP",
        &[(s.pod("b2"), &n2, true)],
    );
    b.metadata.name = Some("named-b".into());
    s.apply(vec![
        ProxyEvent::ServiceApplied(svc),
        ProxyEvent::SliceApplied(a),
        ProxyEvent::SliceApplied(b),
    ])?;
    reach_all(
        &s.pod("a1").place(),
        addr("10.96.0.74", 80),
        &["a2", "b2@9090"],
        |_| Ok(()),
    )?;
    // The UDP port only has a2 behind it (b2 does not name "dns").
    let sock = udp_socket(&s.pod("b1").place(), false);
    for _ in 0..5 {
        let (pod, _) =
            udp_ask(&sock, addr("10.96.0.74", 53)).map_err(|e| format!("dns port: {e}"))?;
        if pod != "a2" {
            return Err(format!("the UDP port answered from {pod}").into());
        }
    }
    Ok(())
}

pub fn sctp(s: &Suite) -> Result<(), Failed> {
    use crate::common::sctp::{start_server, RawSctp};
    const EP_PORT: u16 = 9999;
    let n2 = s.node_name(1);
    let b1 = s.pod("b1");
    start_server(&b1.place(), "b1", false)?;
    start_server(&b1.place(), "b1", true)?;
    s.apply(vec![
        ProxyEvent::ServiceApplied(
            Svc::new("sctp", &["10.96.0.75", "fd00:96::75"], 7777, "SCTP")
                .node_port(30075)
                .s,
        ),
        ProxyEvent::SliceApplied(slice(
            "sctp",
            IpFamily::V4,
            EP_PORT,
            "SCTP",
            &[(b1, &n2, true)],
        )),
        ProxyEvent::SliceApplied(slice(
            "sctp",
            IpFamily::V6,
            EP_PORT,
            "SCTP",
            &[(b1, &n2, true)],
        )),
    ])?;
    // The elements are there, in the SCTP maps.
    for (family, service) in [("ip", "10.96.0.75"), ("ip6", "fd00:96::75")] {
        let elements = nft0(
            s,
            &["list", "map", family, "capstan-proxy", "endpoints-sctp"],
        )?;
        if !elements.contains(&format!("{service} . sctp . 7777")) {
            return Err(format!("no SCTP endpoint element for {service}: {elements}").into());
        }
    }
    // An INIT to the service reaches b1 on its own port, and the INIT ACK
    // comes back from the service's address (conntrack's reverse NAT).
    let mut tag = 0x1000_0000u32;
    let mut exchange = |place: &Place, to: SocketAddr| -> Result<(String, SocketAddr), Failed> {
        let sock = RawSctp::open(place, Duration::from_millis(700), to.is_ipv6())?;
        let mut last = None;
        for attempt in 0..3u16 {
            tag += 1;
            sock.send_init(40000 + attempt, to, tag)?;
            match sock.recv_init_ack(tag) {
                Ok(p) => return Ok((p.cookie, p.src)),
                Err(e) => last = Some(e),
            }
        }
        Err(format!("no INIT ACK from {to}: {last:?}").into())
    };
    let service = addr("10.96.0.75", 7777);
    let service6 = addr("fd00:96::75", 7777);
    for client in ["a1", "b2"] {
        let c = s.pod(client);
        for (to, want) in [
            (service, format!("b1 {} {EP_PORT} {}", b1.ip, c.ip)),
            (service6, format!("b1 - {EP_PORT} {}", c.ip6)),
        ] {
            let (cookie, from) = exchange(&c.place(), to)?;
            if cookie != want || from != to {
                return Err(format!(
                    "{client}: INIT ACK from {from} saying {cookie:?}; want from {to} saying {want:?}"
                )
                .into());
            }
        }
    }
    // NodePort from outside the nodes, through node 1: masqueraded.
    let client = Client::new(&s.lab, "sctp", 202)?;
    let node_port = SocketAddr::from((s.lab.node(0).ip(), 30075));
    let target = format!("b1 {} {EP_PORT} ", b1.ip);
    let (cookie, from) = exchange(&client.place(), node_port)?;
    if !cookie.starts_with(&target) || cookie.ends_with(&client.ip.to_string()) || from != node_port
    {
        return Err(format!(
            "NodePort: INIT ACK from {from} saying {cookie:?}; want from {node_port}, {target}, masqueraded"
        )
        .into());
    }
    Ok(())
}
