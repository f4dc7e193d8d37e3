//! One way to wire a namespace to another: a veth made inside namespace A
//! with its peer sent straight into namespace B as `eth0`, A's end plugged
//! into a bridge, B's end addressed and routed. Never touches the host.

use std::net::IpAddr;
use std::process::Command;

use crate::{cmd, LabError};

/// The name B's end always gets: what every pod and node expects.
pub const PEER: &str = "eth0";

/// A veth pair to make; `create` runs the `ip` steps in a fixed order
/// (link, bridge port, hairpin, addresses, up, routes).
#[derive(Debug, Clone)]
pub struct Veth {
    ns: String,
    port: String,
    peer_ns: String,
    bridge: Option<String>,
    mtu: Option<String>,
    hairpin: bool,
    addrs: Vec<String>,
    gateways: Vec<IpAddr>,
}

impl Veth {
    /// `port` in namespace `ns`, its peer `eth0` in namespace `peer_ns`.
    pub fn new(ns: &str, port: &str, peer_ns: &str) -> Self {
        Veth {
            ns: ns.into(),
            port: port.into(),
            peer_ns: peer_ns.into(),
            bridge: None,
            mtu: None,
            hairpin: false,
            addrs: Vec::new(),
            gateways: Vec::new(),
        }
    }

    /// A's end becomes a port of `bridge` (which must exist in A).
    pub fn bridge(mut self, bridge: &str) -> Self {
        self.bridge = Some(bridge.into());
        self
    }

    /// Both ends get this MTU (as a CNI plugin sets it).
    pub fn mtu(mut self, mtu: &str) -> Self {
        self.mtu = Some(mtu.into());
        self
    }

    /// The bridge port sends a frame back out of the port it came in on,
    /// as capstan-cni's hairpinMode does.
    pub fn hairpin(mut self) -> Self {
        self.hairpin = true;
        self
    }

    /// An address on `eth0` in CIDR form; IPv6 ones skip DAD, so they are
    /// usable at once.
    pub fn addr(mut self, cidr: impl std::fmt::Display) -> Self {
        self.addrs.push(cidr.to_string());
        self
    }

    /// A default route in B via `gateway` (its family picks `-4`/`-6`).
    pub fn gateway(mut self, gateway: impl Into<IpAddr>) -> Self {
        self.gateways.push(gateway.into());
        self
    }

    /// Makes the pair; the first failing `ip` step is the error.
    pub fn create(&self) -> Result<(), LabError> {
        for (ns, args) in self.steps() {
            let mut c = Command::new("ip");
            c.args(["-n", &ns]).args(&args);
            cmd::run(&mut c)?;
        }
        Ok(())
    }

    /// The `ip -n <ns> ...` runs `create` makes, in order: (namespace, args).
    fn steps(&self) -> Vec<(String, Vec<String>)> {
        let (a, b) = (&self.ns, &self.peer_ns);
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut steps = Vec::new();
        let mut add = words(&["link", "add", &self.port]);
        if let Some(mtu) = &self.mtu {
            add.extend(words(&["mtu", mtu]));
        }
        add.extend(words(&["type", "veth", "peer", "name", PEER, "netns", b]));
        steps.push((a.clone(), add));
        let up = match &self.bridge {
            Some(br) => words(&["link", "set", &self.port, "master", br, "up"]),
            None => words(&["link", "set", &self.port, "up"]),
        };
        steps.push((a.clone(), up));
        if self.hairpin {
            let hairpin = [
                "link",
                "set",
                &self.port,
                "type",
                "bridge_slave",
                "hairpin",
                "on",
            ];
            steps.push((a.clone(), words(&hairpin)));
        }
        for cidr in &self.addrs {
            let mut args = words(&["addr", "add", cidr, "dev", PEER]);
            if cidr.contains(':') {
                args.push("nodad".into());
            }
            steps.push((b.clone(), args));
        }
        let mut up = words(&["link", "set", PEER]);
        if let Some(mtu) = &self.mtu {
            up.extend(words(&["mtu", mtu]));
        }
        up.push("up".into());
        steps.push((b.clone(), up));
        for gw in &self.gateways {
            let family = if gw.is_ipv4() { "-4" } else { "-6" };
            let gw = gw.to_string();
            steps.push((
                b.clone(),
                words(&[family, "route", "add", "default", "via", &gw]),
            ));
        }
        steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &Veth) -> Vec<String> {
        v.steps()
            .into_iter()
            .map(|(ns, args)| format!("{ns}: {}", args.join(" ")))
            .collect()
    }

    #[test]
    fn a_plain_pair_is_made_upped_and_routed() {
        let v = Veth::new("ul", "veth-n1", "n1")
            .bridge("lab0")
            .addr("192.168.250.11/24")
            .gateway(std::net::Ipv4Addr::new(192, 168, 250, 1));
        assert_eq!(
            lines(&v),
            [
                "ul: link add veth-n1 type veth peer name eth0 netns n1",
                "ul: link set veth-n1 master lab0 up",
                "n1: addr add 192.168.250.11/24 dev eth0",
                "n1: link set eth0 up",
                "n1: -4 route add default via 192.168.250.1",
            ]
        );
    }

    #[test]
    fn mtu_hairpin_and_ipv6_take_their_steps() {
        let v = Veth::new("node", "vp", "pod")
            .mtu("1450")
            .hairpin()
            .addr("fd00::2/64")
            .gateway("fd00::1".parse::<IpAddr>().expect("v6"));
        assert_eq!(
            lines(&v),
            [
                "node: link add vp mtu 1450 type veth peer name eth0 netns pod",
                "node: link set vp up",
                "node: link set vp type bridge_slave hairpin on",
                "pod: addr add fd00::2/64 dev eth0 nodad",
                "pod: link set eth0 mtu 1450 up",
                "pod: -6 route add default via fd00::1",
            ]
        );
    }
}
