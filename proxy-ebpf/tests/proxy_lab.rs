//! The nftables proxy with real traffic: a 2-node lab (no etcd, no
//! containerd), pods as namespaces on a bridge per node, a proxy per node
//! syncing inside that node's namespace from Services and EndpointSlices
//! fed directly (the same objects a kube watcher delivers). One lab for the
//! whole suite (harness = false); tests run in order and build on the
//! services the earlier ones made. Tests by theme live in `proxy_lab/`
//! (external destinations, traffic policies, protocols, UDP conntrack,
//! service changes); the trial list below is the order they run in.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use capstan_lab::{privileged, Lab};
use capstan_proxy::healthcheck::HealthServer;
use capstan_proxy::model::IpFamily;
use capstan_proxy::{Place, Proxy, ProxyEvent, SyncReport};
use libtest_mimic::{Arguments, Failed, Trial};

mod common;
use common::*;

#[path = "proxy_lab/external.rs"]
mod external;
#[path = "proxy_lab/internal_policy.rs"]
mod internal_policy;
#[path = "proxy_lab/protocols.rs"]
mod protocols;
#[path = "proxy_lab/service_changes.rs"]
mod service_changes;
#[path = "proxy_lab/udp_conntrack.rs"]
mod udp_conntrack;
use external::*;
use internal_policy::*;
use protocols::*;
use service_changes::*;
use udp_conntrack::*;

const WEB_V4: &str = "10.96.0.10";
const WEB_V6: &str = "fd00:96::10";

struct Suite {
    lab: Lab,
    pods: Vec<Pod>,
    proxies: Vec<Mutex<Proxy>>,
    /// Every event fed so far, to replay into a restarted proxy.
    history: Mutex<Vec<ProxyEvent>>,
    rt: tokio::runtime::Runtime,
    health: Mutex<Vec<HealthServer>>,
}

impl Suite {
    fn pod(&self, name: &str) -> &Pod {
        self.pods.iter().find(|p| p.name == name).expect("pod")
    }

    fn node_name(&self, i: usize) -> String {
        self.lab.node(i).name().to_string()
    }

    fn node_place(&self, i: usize) -> Place {
        Place::netns(format!("/run/netns/{}", self.lab.node(i).netns_name()))
    }

    fn underlay(&self) -> Place {
        Place::netns(self.lab.underlay().path())
    }

    /// Feeds events to every node's proxy and syncs each; then refreshes
    /// the health-check servers.
    fn apply(&self, events: Vec<ProxyEvent>) -> Result<Vec<SyncReport>, Failed> {
        self.history
            .lock()
            .map_err(|_| "poisoned")?
            .extend(events.iter().cloned());
        let mut reports = Vec::new();
        for (i, p) in self.proxies.iter().enumerate() {
            let mut p = p.lock().map_err(|_| "poisoned")?;
            for e in &events {
                p.handle(e.clone());
            }
            if let Some(r) = p.sync().map_err(|e| format!("sync node {i}: {e}"))? {
                reports.push(r);
            }
            let checks = p.health_checks();
            let mut hs = self.health.lock().map_err(|_| "poisoned")?;
            let errors = self.rt.block_on(async { hs[i].update(checks) });
            if let Some(e) = errors.first() {
                return Err(format!("health server node {i}: {e}").into());
            }
        }
        Ok(reports)
    }
}

fn addr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().expect("ip"), port)
}

fn main() {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    if !privileged::require("proxy_lab", &["ip", "nft", "conntrack", "sysctl"]) {
        return;
    }
    let lab = Lab::builder()
        .nodes(2)
        .etcd(false)
        .containerd(false)
        .image(false)
        .build()
        .expect("build lab");
    setup_nodes(&lab, 2);
    let pods = vec![
        make_pod(&lab, 0, "a1", 2),
        make_pod(&lab, 0, "a2", 3),
        make_pod(&lab, 1, "b1", 2),
        make_pod(&lab, 1, "b2", 3),
    ];
    for p in &pods {
        start_server(p);
    }
    let proxies = (0..2).map(|i| Mutex::new(proxy_for(&lab, i))).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let health = (0..2)
        .map(|i| {
            HealthServer::new(Place::netns(format!(
                "/run/netns/{}",
                lab.node(i).netns_name()
            )))
        })
        .collect();
    let suite = Arc::new(Suite {
        lab,
        pods,
        proxies,
        history: Mutex::new(Vec::new()),
        rt,
        health: Mutex::new(health),
    });
    // The initial state: one dual-stack NodePort service on both nodes.
    let (n1, n2) = (suite.node_name(0), suite.node_name(1));
    let web = Svc::new("web", &[WEB_V4, WEB_V6], 80, "TCP")
        .node_port(30080)
        .s;
    let eps = [
        (suite.pod("a2"), n1.as_str(), true),
        (suite.pod("b1"), n2.as_str(), true),
    ];
    let initial = vec![
        ProxyEvent::ServiceApplied(web),
        ProxyEvent::SliceApplied(slice("web", IpFamily::V4, TCP_PORT, "TCP", &eps)),
        ProxyEvent::SliceApplied(slice("web", IpFamily::V6, TCP_PORT, "TCP", &eps)),
        ProxyEvent::InitDone,
    ];
    let reports = suite.apply(initial).expect("initial sync");
    assert!(
        reports.iter().all(|r| r.full),
        "first sync is full: {reports:?}"
    );

    let t = |name: &'static str, f: fn(&Suite) -> Result<(), Failed>| {
        let s = suite.clone();
        Trial::test(name, move || f(&s))
    };
    let trials = vec![
        t("cluster_ip_from_same_node_and_other_node", cluster_ip),
        t(
            "node_port_from_underlay_on_every_node_and_from_the_node",
            node_port,
        ),
        t(
            "no_endpoints_rejects_fast_tcp_and_udp",
            no_endpoints_rejects,
        ),
        t(
            "partial_sync_touches_only_the_changed_service",
            partial_sync,
        ),
        t("hairpin_pod_reaches_itself_through_its_service", hairpin),
        t("session_affinity_sticks_and_expires", affinity),
        t(
            "external_traffic_policy_local_keeps_client_ip_and_health_check",
            external_local,
        ),
        t("udp_follows_an_endpoint_change", udp_endpoint_change),
        t("ipv6_cluster_ip_and_node_port", ipv6),
        t("terminating_endpoints_only_when_nothing_ready", terminating),
        t(
            "external_ips_reach_endpoints_from_a_client_routed_via_either_node",
            external_ips,
        ),
        t(
            "load_balancer_ips_reach_endpoints_and_local_keeps_client_ip",
            load_balancer,
        ),
        t(
            "local_policy_falls_back_to_a_terminating_local_endpoint",
            local_terminating,
        ),
        t(
            "internal_traffic_policy_local_uses_only_node_local_endpoints",
            internal_local,
        ),
        t(
            "named_target_ports_resolve_per_slice_and_per_port",
            named_ports,
        ),
        t(
            "ipv6_external_ip_and_load_balancer_ip_with_local_policy",
            ipv6_external,
        ),
        t(
            "ipv6_udp_endpoint_change_and_reject_without_endpoints",
            ipv6_udp_and_reject,
        ),
        t("sctp_cluster_ip_and_node_port_with_raw_packets", sctp),
        t(
            "udp_conntrack_entries_of_a_removed_endpoint_are_deleted",
            udp_conntrack_cleared,
        ),
        t(
            "udp_flows_from_before_a_service_existed_are_cleared",
            udp_before_service,
        ),
        t(
            "affinity_on_and_off_then_delete_leaves_nothing_behind",
            affinity_flip,
        ),
        t("restart_keeps_connections_and_rules_until_resync", restart),
        t(
            "table_altered_by_someone_else_forces_full_resync",
            tampering,
        ),
    ];
    let conclusion = libtest_mimic::run(&args, trials);
    // Debugging aid: keep the lab (namespaces, tables) until Enter is pressed.
    if std::env::var("PROXY_LAB_HOLD").is_ok() {
        eprintln!("holding lab {}; press enter", suite.lab.prefix());
        let _ = std::io::stdin().read_line(&mut String::new());
    }
    drop(suite);
    conclusion.exit();
}

fn cluster_ip(s: &Suite) -> Result<(), Failed> {
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

fn node_port(s: &Suite) -> Result<(), Failed> {
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

fn expect_refused(
    r: std::io::Result<(String, IpAddr)>,
    start: Instant,
    what: &str,
) -> Result<(), Failed> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            if start.elapsed() > Duration::from_millis(500) {
                return Err(
                    format!("{what}: refused, but only after {:?}", start.elapsed()).into(),
                );
            }
            Ok(())
        }
        other => Err(format!("{what}: want connection refused, got {other:?}").into()),
    }
}

fn no_endpoints_rejects(s: &Suite) -> Result<(), Failed> {
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

/// Rule handles of the chains in node 0's table whose name contains
/// `chain_prefix`: unchanged handles mean no rule was rewritten.
fn handles(s: &Suite, chain_prefix: &str) -> Result<Vec<u64>, Failed> {
    let out = run(s
        .lab
        .node(0)
        .command("nft")
        .map_err(|e| e.to_string())?
        .args(["-j", "-a", "list", "table", "ip", "capstan-proxy"]))?;
    let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
    Ok(v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("rule"))
        .filter(|r| {
            r["chain"]
                .as_str()
                .is_some_and(|c| c.contains(chain_prefix))
        })
        .filter_map(|r| r["handle"].as_u64())
        .collect())
}

fn partial_sync(s: &Suite) -> Result<(), Failed> {
    // web has no chain of its own (elements only): no rule of the table
    // may be rewritten; a new shared pick chain may appear.
    let before = handles(s, "")?;
    if before.is_empty() {
        return Err("the table has no rules".into());
    }
    let n1 = s.node_name(0);
    let reports = s.apply(vec![
        ProxyEvent::ServiceApplied(Svc::new("extra", &["10.96.0.25"], 80, "TCP").s),
        ProxyEvent::SliceApplied(slice(
            "extra",
            IpFamily::V4,
            TCP_PORT,
            "TCP",
            &[(s.pod("a2"), &n1, true)],
        )),
    ])?;
    for r in &reports {
        if r.full || r.services_changed != 1 || r.commands > 12 {
            return Err(format!("want a small partial sync, got {r:?}").into());
        }
    }
    let after = handles(s, "")?;
    if !before.iter().all(|h| after.contains(h)) {
        return Err(format!("rules were rewritten: {before:?} -> {after:?}").into());
    }
    let (pod, _) = tcp_request(
        &s.pod("b2").place(),
        addr("10.96.0.25", 80),
        Duration::from_secs(2),
    )?;
    if pod != "a2" {
        return Err(format!("extra answered from {pod}").into());
    }
    Ok(())
}

fn hairpin(s: &Suite) -> Result<(), Failed> {
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

fn affinity_elements(s: &Suite) -> Result<String, Failed> {
    let out = run(s
        .lab
        .node(0)
        .command("nft")
        .map_err(|e| e.to_string())?
        .args(["-j", "list", "sets", "ip"]))?;
    let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
    Ok(v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("set"))
        .filter(|set| set["name"].as_str().is_some_and(|n| n.contains("/sticky/")))
        .map(|set| set["elem"].to_string())
        .collect::<Vec<_>>()
        .join(" "))
}

fn affinity(s: &Suite) -> Result<(), Failed> {
    let (n1, n2) = (s.node_name(0), s.node_name(1));
    s.apply(vec![
        ProxyEvent::ServiceApplied(Svc::new("sticky", &["10.96.0.40"], 80, "TCP").affinity(2).s),
        ProxyEvent::SliceApplied(slice(
            "sticky",
            IpFamily::V4,
            TCP_PORT,
            "TCP",
            &[
                (s.pod("a2"), &n1, true),
                (s.pod("b1"), &n2, true),
                (s.pod("b2"), &n2, true),
            ],
        )),
    ])?;
    let a1 = s.pod("a1");
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..15 {
        let (pod, _) = tcp_request(&a1.place(), addr("10.96.0.40", 80), Duration::from_secs(2))?;
        seen.insert(pod);
    }
    if seen.len() != 1 {
        return Err(format!("affinity did not stick: {seen:?}").into());
    }
    let elems = affinity_elements(s)?;
    if !elems.contains(&a1.ip.to_string()) {
        return Err(format!("client not recorded in an affinity set: {elems}").into());
    }
    // The 2 s timeout expires the record (it is what ends the stickiness).
    wait_for("affinity record to expire", Duration::from_secs(6), || {
        affinity_elements(s)
            .ok()
            .filter(|e| !e.contains(&a1.ip.to_string()))
    })?;
    Ok(())
}

fn http_status(place: &Place, to: SocketAddr) -> Result<u16, Failed> {
    let line = place.run_in(move || {
        use std::io::{BufRead, Write};
        let mut c = std::net::TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
        c.set_read_timeout(Some(Duration::from_secs(2)))?;
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")?;
        let mut line = String::new();
        std::io::BufReader::new(c).read_line(&mut line)?;
        Ok(line)
    })?;
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {line:?}").into())
}

fn external_local(s: &Suite) -> Result<(), Failed> {
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

fn udp_endpoint_change(s: &Suite) -> Result<(), Failed> {
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

fn ipv6(s: &Suite) -> Result<(), Failed> {
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

fn terminating(s: &Suite) -> Result<(), Failed> {
    let (n1, n2) = (s.node_name(0), s.node_name(1));
    let mut ending = slice(
        "term",
        IpFamily::V4,
        TCP_PORT,
        "TCP",
        &[(s.pod("a2"), &n1, true), (s.pod("b1"), &n2, false)],
    );
    // b1: not ready, still serving, terminating.
    if let Some(c) = ending.endpoints[1].conditions.as_mut() {
        c.serving = Some(true);
        c.terminating = Some(true);
    }
    s.apply(vec![
        ProxyEvent::ServiceApplied(Svc::new("term", &["10.96.0.60"], 80, "TCP").s),
        ProxyEvent::SliceApplied(ending.clone()),
    ])?;
    for _ in 0..10 {
        let (pod, _) = tcp_request(
            &s.pod("b2").place(),
            addr("10.96.0.60", 80),
            Duration::from_secs(2),
        )?;
        if pod != "a2" {
            return Err(format!("terminating endpoint {pod} used while a2 is ready").into());
        }
    }
    // a2 goes away: the terminating one is all that is left, and is used.
    ending.endpoints.remove(0);
    s.apply(vec![ProxyEvent::SliceApplied(ending)])?;
    let (pod, _) = tcp_request(
        &s.pod("b2").place(),
        addr("10.96.0.60", 80),
        Duration::from_secs(2),
    )?;
    if pod != "b1" {
        return Err(format!("want the terminating b1, got {pod}").into());
    }
    Ok(())
}

fn restart(s: &Suite) -> Result<(), Failed> {
    let a1 = s.pod("a1");
    let mut conn = Conn::open(&a1.place(), addr(WEB_V4, 80))?;
    let (first, _) = conn.ask()?;
    let mut fresh = proxy_for(&s.lab, 0);
    // Nothing is written before the initial state is known.
    if fresh.sync()?.is_some() {
        return Err("a proxy synced before its source's initial list".into());
    }
    if conn.ask()?.0 != first {
        return Err("connection moved".into());
    }
    tcp_request(&a1.place(), addr(WEB_V4, 80), Duration::from_secs(2))
        .map_err(|e| format!("rules gone during restart: {e}"))?;
    for e in s.history.lock().map_err(|_| "poisoned")?.iter() {
        fresh.handle(e.clone());
    }
    let r = fresh.sync()?.ok_or("no sync after restart")?;
    if !r.full {
        return Err("the first sync after a restart must be full".into());
    }
    if r.recreated {
        return Err("the resync re-created the table instead of restoring it in place".into());
    }
    let (again, _) = conn
        .ask()
        .map_err(|e| format!("established connection broken by the resync: {e}"))?;
    if again != first {
        return Err(format!("established connection moved from {first} to {again}").into());
    }
    *s.proxies[0].lock().map_err(|_| "poisoned")? = fresh;
    Ok(())
}

fn nft0(s: &Suite, args: &[&str]) -> Result<String, Failed> {
    Ok(run(s
        .lab
        .node(0)
        .command("nft")
        .map_err(|e| e.to_string())?
        .args(args))?)
}

fn tampering(s: &Suite) -> Result<(), Failed> {
    // A table someone else owns, in the same namespace.
    nft0(s, &["add", "table", "ip", "foreign"])?;
    nft0(s, &["add", "chain", "ip", "foreign", "c"])?;
    nft0(s, &["add", "rule", "ip", "foreign", "c", "counter"])?;
    nft0(s, &["flush", "chain", "ip", "capstan-proxy", "services"])?;
    let reports = s.apply(vec![ProxyEvent::ServiceDeleted(
        Svc::new("extra", &["10.96.0.25"], 80, "TCP").s,
    )])?;
    if !reports[0].full || reports[1].full || reports[0].recreated {
        return Err(format!("want a full sync in place on node 1 only: {reports:?}").into());
    }
    tcp_request(
        &s.pod("a1").place(),
        addr(WEB_V4, 80),
        Duration::from_secs(2),
    )
    .map_err(|e| format!("web after resync: {e}"))?;
    let r = tcp_request(
        &s.pod("a1").place(),
        addr("10.96.0.25", 80),
        Duration::from_millis(500),
    );
    if r.is_ok() {
        return Err("deleted service still answers".into());
    }
    let foreign = nft0(s, &["list", "table", "ip", "foreign"])?;
    if !foreign.contains("counter") {
        return Err(format!("the full sync touched a table it does not own: {foreign}").into());
    }
    Ok(())
}

/// Requests from `place` until every pod in `want` answered (at most 60
/// tries); fails if any other pod answers or `check` rejects a client
/// address the server saw.
fn reach_all(
    place: &Place,
    to: SocketAddr,
    want: &[&str],
    check: impl Fn(IpAddr) -> Result<(), String>,
) -> Result<(), Failed> {
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..60 {
        let (pod, from) =
            tcp_request(place, to, Duration::from_secs(2)).map_err(|e| format!("{to}: {e}"))?;
        if !want.contains(&pod.as_str()) {
            return Err(format!("{to}: answer from {pod}, want one of {want:?}").into());
        }
        check(from).map_err(|e| format!("{to} answered by {pod}: {e}"))?;
        seen.insert(pod);
        if seen.len() == want.len() {
            return Ok(());
        }
    }
    Err(format!("{to}: reached only {seen:?}, want {want:?}").into())
}

/// A connection attempt that must not get through (the proxy drops it):
/// no answer, and not a reset either.
fn expect_dropped(place: &Place, to: SocketAddr, what: &str) -> Result<(), Failed> {
    match tcp_request(place, to, Duration::from_millis(500)) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) =>
        {
            Ok(())
        }
        other => Err(format!("{what}: want the packet dropped (timeout), got {other:?}").into()),
    }
}
