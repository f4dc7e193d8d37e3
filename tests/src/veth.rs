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
        let (a, b) = (self.ns.as_str(), self.peer_ns.as_str());
        let mut add = vec!["link", "add", &self.port];
        if let Some(mtu) = &self.mtu {
            add.extend(["mtu", mtu]);
        }
        add.extend(["type", "veth", "peer", "name", PEER, "netns", b]);
        ip(a, &add)?;
        match &self.bridge {
            Some(br) => ip(a, &["link", "set", &self.port, "master", br, "up"])?,
            None => ip(a, &["link", "set", &self.port, "up"])?,
        }
        if self.hairpin {
            let port = self.port.as_str();
            ip(
                a,
                &["link", "set", port, "type", "bridge_slave", "hairpin", "on"],
            )?;
        }
        for cidr in &self.addrs {
            let mut args = vec!["addr", "add", cidr, "dev", PEER];
            if cidr.contains(':') {
                args.push("nodad");
            }
            ip(b, &args)?;
        }
        let mut up = vec!["link", "set", PEER];
        if let Some(mtu) = &self.mtu {
            up.extend(["mtu", mtu]);
        }
        up.push("up");
        ip(b, &up)?;
        for gw in &self.gateways {
            let family = if gw.is_ipv4() { "-4" } else { "-6" };
            let gw = gw.to_string();
            ip(b, &[family, "route", "add", "default", "via", &gw])?;
        }
        Ok(())
    }
}

fn ip(ns: &str, args: &[&str]) -> Result<(), LabError> {
    cmd::run(Command::new("ip").args(["-n", ns]).args(args)).map(|_| ())
}
