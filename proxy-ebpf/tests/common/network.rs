//! The suites' network: node bridges with host-gw pod routes (IPv4 and
//! IPv6), pods as namespaces on them, a client outside every node, and the
//! `ip`/`sysctl` runs that build them. Only lab namespaces are touched.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;

use capstan_lab::veth::Veth;
use capstan_lab::{Lab, Netns};
use capstan_proxy::Place;

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
