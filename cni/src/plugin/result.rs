//! The ADD result: what was attached, as the spec's interfaces/ips/routes,
//! and its merge after a previous plugin's result when capstan is chained
//! second. Pure; must never look at the kernel.

use std::net::IpAddr;
use std::path::Path;

use ipnetwork::IpNetwork;

use crate::config::Family;
use crate::netlink::link::format_mac;
use crate::netlink::LinkInfo;
use crate::protocol::{CniResult, Dns, Interface, IpConfig, Route};

/// Index of the pod interface in our own `interfaces` list.
const POD_INTERFACE: usize = 2;

/// Everything ADD made, as the result reports it.
pub struct Attached<'a> {
    pub bridge: &'a LinkInfo,
    pub host_veth: &'a str,
    pub host_mac: [u8; 6],
    pub ifname: &'a str,
    pub pod_mac: [u8; 6],
    pub sandbox: &'a Path,
    pub mtu: u32,
    /// One per family, in the order of `families`.
    pub addrs: &'a [IpNetwork],
    pub families: &'a [Family],
    pub routes: &'a [(IpNetwork, IpAddr)],
    pub dns: Dns,
}

impl Attached<'_> {
    /// Interfaces bridge, host veth, pod interface (the order the reference
    /// bridge plugin uses, which portmap/bandwidth expect); IPs on the pod
    /// interface with the bridge as gateway.
    pub fn to_result(&self) -> CniResult {
        CniResult {
            interfaces: vec![
                Interface {
                    name: self.bridge.name.clone(),
                    mac: self.bridge.mac.clone(),
                    ..Default::default()
                },
                Interface {
                    name: self.host_veth.to_string(),
                    mac: Some(format_mac(&self.host_mac)),
                    mtu: Some(self.mtu),
                    ..Default::default()
                },
                Interface {
                    name: self.ifname.to_string(),
                    mac: Some(format_mac(&self.pod_mac)),
                    mtu: Some(self.mtu),
                    sandbox: Some(self.sandbox.display().to_string()),
                    ..Default::default()
                },
            ],
            ips: self
                .addrs
                .iter()
                .zip(self.families)
                .map(|(addr, f)| IpConfig {
                    address: *addr,
                    gateway: Some(f.gateway_ip()),
                    interface: Some(POD_INTERFACE),
                })
                .collect(),
            routes: self
                .routes
                .iter()
                .map(|(dst, gw)| Route::via(*dst, *gw))
                .collect(),
            dns: self.dns.clone(),
        }
    }
}

/// Chained after another plugin: keep what it reported and append ours,
/// re-pointing our IPs' interface indexes past its interfaces.
pub fn merge_after(prev: &CniResult, mut ours: CniResult) -> CniResult {
    let offset = prev.interfaces.len();
    for ip in &mut ours.ips {
        ip.interface = ip.interface.map(|i| i + offset);
    }
    let mut merged = prev.clone();
    merged.interfaces.extend(ours.interfaces);
    merged.ips.extend(ours.ips);
    merged.routes.extend(ours.routes);
    if !ours.dns.is_empty() {
        merged.dns = ours.dns;
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subnet_file::GatewayPrefix;

    #[test]
    fn result_points_ips_at_the_pod_interface() {
        let bridge = LinkInfo {
            index: 3,
            name: "capstan0".into(),
            mac: Some("02:00:00:00:00:01".into()),
            mtu: Some(1450),
            controller: None,
            up: true,
        };
        let families = [Family {
            gateway: GatewayPrefix("10.244.1.1/24".parse().expect("literal")),
            cluster: None,
        }];
        let addrs = ["10.244.1.7/24".parse().expect("literal")];
        let routes = [(
            "0.0.0.0/0".parse().expect("literal"),
            families[0].gateway_ip(),
        )];
        let r = Attached {
            bridge: &bridge,
            host_veth: "cap0123456789ab",
            host_mac: [2, 0, 0, 0, 0, 2],
            ifname: "eth0",
            pod_mac: [2, 0, 0, 0, 0, 3],
            sandbox: Path::new("/run/netns/p"),
            mtu: 1450,
            addrs: &addrs,
            families: &families,
            routes: &routes,
            dns: Dns::default(),
        }
        .to_result();
        assert_eq!(r.interfaces[POD_INTERFACE].name, "eth0");
        assert_eq!(
            r.interfaces[POD_INTERFACE].mac.as_deref(),
            Some("02:00:00:00:00:03")
        );
        assert_eq!(r.ips[0].interface, Some(POD_INTERFACE));
        assert_eq!(
            r.ips[0].gateway.map(|g| g.to_string()).as_deref(),
            Some("10.244.1.1")
        );
        assert_eq!(r.routes[0].gw, Some(families[0].gateway_ip()));
    }

    #[test]
    fn merge_offsets_interface_indexes() {
        let prev = CniResult {
            interfaces: vec![Interface {
                name: "x".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let ours = CniResult {
            interfaces: vec![Interface::default(); 3],
            ips: vec![IpConfig {
                address: "10.0.0.2/24".parse().expect("literal"),
                gateway: None,
                interface: Some(2),
            }],
            ..Default::default()
        };
        let m = merge_after(&prev, ours);
        assert_eq!(m.interfaces.len(), 4);
        assert_eq!(m.ips[0].interface, Some(3));
    }
}
