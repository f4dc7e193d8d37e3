//! Lab plumbing for the proxy suites: pods as network namespaces on a
//! bridge per node (host-gw routes between nodes, IPv4 and IPv6), a test
//! server per pod that answers every line with "<pod> <client address>",
//! clients that connect from inside a namespace, and Service/EndpointSlice
//! builders. Everything lives in lab namespaces; the lab removes them.

#![allow(dead_code)]

pub mod sctp;

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

use capstan_lab::veth::Veth;
pub use capstan_lab::wait::wait_for;
use capstan_lab::{Lab, Netns};
use capstan_proxy::model::IpFamily;
use capstan_proxy::{Place, Proxy, ProxyConfig};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub const TCP_PORT: u16 = 8080;
pub const UDP_PORT: u16 = 5353;
pub const POD_CIDR_V4: (&str, u8) = ("10.246.0.0", 16);
pub const POD_CIDR_V6: (&str, u8) = ("fd00:246::", 32);

pub struct Pod {
    pub name: String,
    pub node: usize,
    pub netns: String,
    pub ip: Ipv4Addr,
    pub ip6: Ipv6Addr,
}

impl Pod {
    pub fn place(&self) -> Place {
        Place::netns(format!("/run/netns/{}", self.netns))
    }
}

pub fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip(ns: &str, args: &[&str]) {
    run(Command::new("ip").args(["-n", ns]).args(args)).unwrap_or_else(|e| panic!("{e}"));
}

fn sysctl(ns: &str, kv: &str) {
    let netns = Netns::existing(ns).expect("netns");
    run(netns.command("sysctl").expect("sysctl").args(["-qw", kv]))
        .unwrap_or_else(|e| panic!("{e}"));
}

pub fn node_ip6(n: usize) -> Ipv6Addr {
    format!("fd00:250::{}", 10 + n).parse().expect("v6")
}

/// Node n (1-based) gets bridge cbr0 with 10.246.n.1/24 and fd00:246:n::1/64,
/// forwarding on, and routes to the other nodes' pod subnets via their
/// underlay addresses.
pub fn setup_nodes(lab: &Lab, count: usize) {
    for i in 0..count {
        let node = lab.node(i);
        let ns = node.netns_name();
        let n = i + 1;
        sysctl(ns, "net.ipv4.ip_forward=1");
        sysctl(ns, "net.ipv6.conf.all.forwarding=1");
        ip(
            ns,
            &[
                "addr",
                "add",
                &format!("{}/64", node_ip6(n)),
                "dev",
                "eth0",
                "nodad",
            ],
        );
        // A default route, as a dual-stack node has (the lab gives nodes
        // only an IPv4 one): without it, IPv6 packets to a service address
        // without endpoints fail the route lookup ("network unreachable")
        // before the forward hook where the proxy rejects them. Nothing
        // in the suite sends IPv6 traffic that leaves through it.
        ip(
            ns,
            &[
                "-6",
                "route",
                "add",
                "default",
                "via",
                "fd00:250::1",
                "dev",
                "eth0",
            ],
        );
        ip(ns, &["link", "add", "cbr0", "type", "bridge"]);
        ip(
            ns,
            &["addr", "add", &format!("10.246.{n}.1/24"), "dev", "cbr0"],
        );
        ip(
            ns,
            &[
                "addr",
                "add",
                &format!("fd00:246:{n}::1/64"),
                "dev",
                "cbr0",
                "nodad",
            ],
        );
        ip(ns, &["link", "set", "cbr0", "up"]);
        for j in 0..count {
            if j == i {
                continue;
            }
            let m = j + 1;
            ip(
                ns,
                &[
                    "route",
                    "add",
                    &format!("10.246.{m}.0/24"),
                    "via",
                    &lab.node(j).ip().to_string(),
                ],
            );
            ip(
                ns,
                &[
                    "-6",
                    "route",
                    "add",
                    &format!("fd00:246:{m}::/64"),
                    "via",
                    &node_ip6(m).to_string(),
                ],
            );
        }
    }
}

/// A pod on node `node` (0-based) with host number `host`.
pub fn make_pod(lab: &Lab, node: usize, name: &str, host: u8) -> Pod {
    let netns = format!("{}-p-{name}", lab.prefix());
    Netns::create(&netns).expect("pod netns").keep();
    let node_ns = lab.node(node).netns_name().to_string();
    let n = node + 1;
    // Hairpin as capstan-cni's hairpinMode does: with br_netfilter loaded,
    // a pod's packet DNATed back to itself is bridged out of the port it
    // came in on.
    let ip4 = Ipv4Addr::new(10, 246, n as u8, host);
    let ip6: Ipv6Addr = format!("fd00:246:{n}::{host}").parse().expect("v6");
    let gw6: Ipv6Addr = format!("fd00:246:{n}::1").parse().expect("v6");
    Veth::new(&node_ns, &format!("v{name}"), &netns)
        .bridge("cbr0")
        .hairpin()
        .addr(format!("{ip4}/24"))
        .addr(format!("{ip6}/64"))
        .gateway(Ipv4Addr::new(10, 246, n as u8, 1))
        .gateway(gw6)
        .create()
        .unwrap_or_else(|e| panic!("{e}"));
    Pod {
        name: name.to_string(),
        node,
        netns,
        ip: ip4,
        ip6,
    }
}

fn canonical(a: SocketAddr) -> IpAddr {
    a.ip().to_canonical()
}

/// Serves TCP and UDP (dual-stack) in the pod: every line or datagram is
/// answered with "<pod> <client address>". Threads live until the process ends.
pub fn start_server(pod: &Pod) {
    let name = pod.name.clone();
    let (tcp, udp) = pod
        .place()
        .run_in(|| {
            let t = TcpListener::bind((Ipv6Addr::UNSPECIFIED, TCP_PORT))?;
            let u = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, UDP_PORT))?;
            Ok((t, u))
        })
        .expect("bind test server");
    serve_tcp(tcp, name.clone());
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((_, peer)) = udp.recv_from(&mut buf) {
            let _ = udp.send_to(format!("{name} {}", canonical(peer)).as_bytes(), peer);
        }
    });
}

/// A second TCP server in the pod on `port`, answering as `label` (so a
/// client sees which port the proxy chose).
pub fn start_tcp_server_on(pod: &Pod, port: u16, label: &str) {
    let tcp = pod
        .place()
        .run_in(move || TcpListener::bind((Ipv6Addr::UNSPECIFIED, port)))
        .expect("bind extra test server");
    serve_tcp(tcp, label.to_string());
}

fn serve_tcp(tcp: TcpListener, name: String) {
    let n = name;
    std::thread::spawn(move || {
        for conn in tcp.incoming().flatten() {
            let n = n.clone();
            std::thread::spawn(move || {
                let Ok(peer) = conn.peer_addr() else { return };
                let Ok(read) = conn.try_clone() else { return };
                let mut out = conn;
                for line in BufReader::new(read).lines() {
                    if line.is_err() || writeln!(out, "{n} {}", canonical(peer)).is_err() {
                        return;
                    }
                }
            });
        }
    });
}

/// One request over a fresh TCP connection from `place`: ("<pod>", client ip).
pub fn tcp_request(
    place: &Place,
    to: SocketAddr,
    timeout: Duration,
) -> std::io::Result<(String, IpAddr)> {
    place.run_in(move || {
        let s = TcpStream::connect_timeout(&to, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        let mut w = s.try_clone()?;
        w.write_all(b"hi\n")?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line)?;
        parse_answer(&line)
    })
}

pub fn parse_answer(line: &str) -> std::io::Result<(String, IpAddr)> {
    let mut it = line.split_whitespace();
    let pod = it.next().unwrap_or_default().to_string();
    let ip = it
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad answer {line:?}")))?;
    Ok((pod, ip))
}

/// A connection kept open across steps (one request per `ask`).
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    pub fn open(place: &Place, to: SocketAddr) -> std::io::Result<Conn> {
        let s = place.run_in(move || TcpStream::connect_timeout(&to, Duration::from_secs(2)))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        Ok(Conn {
            writer: s.try_clone()?,
            reader: BufReader::new(s),
        })
    }

    pub fn ask(&mut self) -> std::io::Result<(String, IpAddr)> {
        self.writer.write_all(b"hi\n")?;
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other("connection closed"));
        }
        parse_answer(&line)
    }
}

/// A UDP socket bound in `place` (its source port stays fixed).
pub fn udp_socket(place: &Place, v6: bool) -> UdpSocket {
    let s = place
        .run_in(move || {
            if v6 {
                UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0))
            } else {
                UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
            }
        })
        .expect("udp socket");
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    s
}

pub fn udp_ask(s: &UdpSocket, to: SocketAddr) -> std::io::Result<(String, IpAddr)> {
    s.send_to(b"hi", to)?;
    let mut buf = [0u8; 200];
    let (n, _) = s.recv_from(&mut buf)?;
    parse_answer(&String::from_utf8_lossy(&buf[..n]))
}

/// Polls `f` until it returns Some or the deadline passes.
pub fn proxy_for(lab: &Lab, node: usize) -> Proxy {
    let n = lab.node(node);
    let mut p = Proxy::new(ProxyConfig {
        node_name: n.name().to_string(),
        families: vec![
            (
                IpFamily::V4,
                Some((POD_CIDR_V4.0.parse().expect("cidr"), POD_CIDR_V4.1)),
            ),
            (
                IpFamily::V6,
                Some((POD_CIDR_V6.0.parse().expect("cidr"), POD_CIDR_V6.1)),
            ),
        ],
        place: Place::netns(format!("/run/netns/{}", n.netns_name())),
        full_resync_interval: Duration::from_secs(3600),
    });
    // Every sync checks for outside changes, so the tampering test is prompt.
    p.set_tamper_check_interval(Duration::ZERO);
    p
}

/// Service builder.
pub struct Svc {
    pub s: Service,
}

impl Svc {
    pub fn new(name: &str, cluster_ips: &[&str], port: i32, protocol: &str) -> Svc {
        Svc {
            s: Service {
                metadata: ObjectMeta {
                    namespace: Some("proxy-test".into()),
                    name: Some(name.into()),
                    ..Default::default()
                },
                spec: Some(ServiceSpec {
                    cluster_ips: Some(cluster_ips.iter().map(|s| s.to_string()).collect()),
                    cluster_ip: cluster_ips.first().map(|s| s.to_string()),
                    ports: Some(vec![ServicePort {
                        name: Some("p".into()),
                        port,
                        protocol: Some(protocol.into()),
                        target_port: Some(IntOrString::String("serve".into())),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                status: None,
            },
        }
    }

    fn spec(&mut self) -> &mut ServiceSpec {
        self.s.spec.get_or_insert_with(Default::default)
    }

    pub fn node_port(mut self, np: i32) -> Svc {
        let spec = self.spec();
        spec.type_ = Some("NodePort".into());
        if let Some(p) = spec.ports.as_mut().and_then(|p| p.first_mut()) {
            p.node_port = Some(np);
        }
        self
    }

    pub fn local(mut self, hc: i32) -> Svc {
        let spec = self.spec();
        spec.external_traffic_policy = Some("Local".into());
        spec.health_check_node_port = Some(hc);
        self
    }

    pub fn external_ips(mut self, ips: &[&str]) -> Svc {
        self.spec().external_ips = Some(ips.iter().map(|s| s.to_string()).collect());
        self
    }

    /// Type LoadBalancer with `ips` as the status' ingress IPs (what a
    /// load-balancer controller writes) and `node_port` for its port.
    pub fn load_balancer(mut self, ips: &[&str], node_port: i32) -> Svc {
        use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, ServiceStatus};
        self = self.node_port(node_port);
        self.spec().type_ = Some("LoadBalancer".into());
        self.s.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(
                    ips.iter()
                        .map(|ip| LoadBalancerIngress {
                            ip: Some(ip.to_string()),
                            ..Default::default()
                        })
                        .collect(),
                ),
            }),
            ..Default::default()
        });
        self
    }

    pub fn internal_local(mut self) -> Svc {
        self.spec().internal_traffic_policy = Some("Local".into());
        self
    }

    pub fn affinity(mut self, timeout: i32) -> Svc {
        use k8s_openapi::api::core::v1::{ClientIPConfig, SessionAffinityConfig};
        let spec = self.spec();
        spec.session_affinity = Some("ClientIP".into());
        spec.session_affinity_config = Some(SessionAffinityConfig {
            client_ip: Some(ClientIPConfig {
                timeout_seconds: Some(timeout),
            }),
        });
        self
    }
}

/// An EndpointSlice for service `svc` listing (pod, ready) pairs; the
/// port is the named target port "serve" resolved to `port`.
pub fn slice(
    svc: &str,
    family: IpFamily,
    port: u16,
    protocol: &str,
    pods: &[(&Pod, &str, bool)],
) -> EndpointSlice {
    let suffix = if family == IpFamily::V4 { "v4" } else { "v6" };
    EndpointSlice {
        metadata: ObjectMeta {
            namespace: Some("proxy-test".into()),
            name: Some(format!("{svc}-{suffix}")),
            labels: Some([("kubernetes.io/service-name".to_string(), svc.to_string())].into()),
            ..Default::default()
        },
        address_type: if family == IpFamily::V4 {
            "IPv4"
        } else {
            "IPv6"
        }
        .into(),
        endpoints: pods
            .iter()
            .map(|(p, node, ready)| Endpoint {
                addresses: vec![if family == IpFamily::V4 {
                    p.ip.to_string()
                } else {
                    p.ip6.to_string()
                }],
                conditions: Some(EndpointConditions {
                    ready: Some(*ready),
                    serving: Some(*ready),
                    terminating: Some(false),
                }),
                node_name: Some(node.to_string()),
                ..Default::default()
            })
            .collect(),
        ports: Some(vec![EndpointPort {
            name: Some("p".into()),
            port: Some(port as i32),
            protocol: Some(protocol.into()),
            ..Default::default()
        }]),
    }
}

/// A client outside every node: its own namespace with one leg on the
/// underlay bridge (`lab0`), address 192.168.250.`host`. Routes to
/// external addresses are set per test with `route_via`. Dropping it
/// deletes the namespace (and with it both ends of the veth).
pub struct Client {
    pub netns: Netns,
    pub ip: Ipv4Addr,
    /// fd00:250::`host`, beside the nodes' IPv6 underlay addresses.
    pub ip6: Ipv6Addr,
}

impl Client {
    pub fn new(lab: &Lab, name: &str, host: u8) -> Result<Client, String> {
        let netns =
            Netns::create(&format!("{}-p-{name}", lab.prefix())).map_err(|e| e.to_string())?;
        let underlay = lab.underlay();
        let ip4 = Ipv4Addr::new(192, 168, 250, host);
        let ip6: Ipv6Addr = format!("fd00:250::{host}")
            .parse()
            .map_err(|e| format!("client v6 address: {e}"))?;
        Veth::new(underlay.name(), &format!("vc{name}"), netns.name())
            .bridge("lab0")
            .addr(format!("{ip4}/24"))
            .addr(format!("{ip6}/64"))
            .create()
            .map_err(|e| e.to_string())?;
        Ok(Client {
            netns,
            ip: ip4,
            ip6,
        })
    }

    pub fn place(&self) -> Place {
        Place::netns(self.netns.path())
    }

    /// Routes `dst` (a host address, either family) through `gateway`
    /// (a node's underlay address of the same family).
    pub fn route_via(&self, dst: &str, gateway: impl Into<IpAddr>) -> Result<(), String> {
        let gateway: IpAddr = gateway.into();
        let (family, len) = if gateway.is_ipv4() {
            ("-4", 32)
        } else {
            ("-6", 128)
        };
        run(Command::new("ip").args([
            family,
            "-n",
            self.netns.name(),
            "route",
            "replace",
            &format!("{dst}/{len}"),
            "via",
            &gateway.to_string(),
        ]))
        .map(|_| ())
    }
}
