//! ADD: reserve addresses (under the IPAM lock only), then build the node
//! side (bridge, gateway address, veth pair straight into the pod, hairpin)
//! and the pod side (addresses, routes), one netlink socket per namespace.
//! Any failure or panic after the reservation is rolled back by `AddUndo`.

use std::fs::File;
use std::net::IpAddr;

use ipnetwork::IpNetwork;

use super::host_veth_name;
use super::undo::AddUndo;
use crate::config::{Family, Network, PluginConfig};
use crate::error::{Error, Result};
use crate::ipam::{plan_allocation, Owner, Pool, Store};
use crate::netlink::link::VethSpec;
use crate::netlink::{self, LinkInfo, NetlinkError};
use crate::protocol::dispatch::Request;
use crate::protocol::{CniResult, Interface, IpConfig, Route};

pub fn add(req: &Request) -> Result<CniResult> {
    let conf = PluginConfig::from_json(&req.raw, &req.header.name)?;
    let net = conf.resolve()?;
    let (container_id, ifname) = super::attachment(req)?;
    let netns_path = req
        .invocation
        .netns
        .clone()
        .ok_or_else(|| Error::Config("CNI_NETNS is required for ADD".into()))?;
    if net.ip_masq {
        tracing::warn!("ipMasq is set, but node-wide masquerade belongs to capstan-agent; capstan-cni installs no NAT rule");
    }
    // Open the netns before reserving anything: an unreachable netns must
    // fail without state to undo.
    let netns = File::open(&netns_path).map_err(|source| Error::Netns {
        path: netns_path.clone(),
        source,
    })?;

    let owner = Owner::new(&container_id, &ifname);
    let store = Store::new(&conf.data_dir);
    let pools: Vec<Pool> = net
        .families
        .iter()
        .map(|f| Pool {
            subnet: f.gateway.subnet(),
            gateway: f.gateway_ip(),
        })
        .collect();
    let ips = {
        let locked = store.lock()?;
        let reserved = locked.reservations()?;
        let last = locked.last_reserved(pools.len());
        let ips = plan_allocation(&pools, &reserved, &last, &owner)?;
        locked.reserve(&ips, &owner)?;
        ips
    };
    tracing::debug!(%owner, ?ips, "reserved");

    let host_veth = host_veth_name(&container_id, &ifname);
    let undo = AddUndo::new(&store, &owner, &host_veth);

    let (bridge, host) = node_side(&conf, &net, &host_veth, &ifname, &netns)?;
    enable_forwarding(&net)?;
    let pod_addrs: Vec<IpNetwork> = ips
        .iter()
        .zip(&net.families)
        .map(|(ip, f)| IpNetwork::new(*ip, f.gateway.prefix()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Config(format!("address/prefix: {e}")))?;
    let routes = pod_routes(&net.families, conf.is_default_gateway);
    let pod = pod_side(&netns, &ifname, &pod_addrs, &routes)?;
    undo.disarm();

    let mut ours = CniResult {
        interfaces: vec![
            Interface {
                name: bridge.name.clone(),
                mac: bridge.mac.clone(),
                ..Default::default()
            },
            Interface {
                name: host.name.clone(),
                mac: host.mac.clone(),
                mtu: Some(net.mtu),
                ..Default::default()
            },
            Interface {
                name: ifname.clone(),
                mac: pod.mac.clone(),
                mtu: Some(net.mtu),
                sandbox: Some(netns_path.display().to_string()),
                ..Default::default()
            },
        ],
        ips: pod_addrs
            .iter()
            .zip(&net.families)
            .map(|(addr, f)| IpConfig {
                address: *addr,
                gateway: Some(f.gateway_ip()),
                interface: Some(2),
            })
            .collect(),
        routes: routes
            .iter()
            .map(|(dst, gw)| Route {
                dst: *dst,
                gw: Some(*gw),
                mtu: None,
                advmss: None,
                priority: None,
                table: None,
                scope: None,
            })
            .collect(),
        dns: req.header.dns.clone().unwrap_or_default(),
    };
    if let Some(prev) = &req.header.prev_result {
        ours = merge_after(prev, ours);
    }
    tracing::info!(%owner, ?ips, veth = %host_veth, "added");
    Ok(ours)
}

/// Bridge, gateway addresses, the veth pair and hairpin, in the namespace
/// the plugin was called in.
fn node_side(
    conf: &PluginConfig,
    net: &Network,
    host_veth: &str,
    ifname: &str,
    netns: &File,
) -> Result<(LinkInfo, LinkInfo)> {
    use std::os::fd::AsRawFd;
    let spec = VethSpec {
        host_name: host_veth,
        peer_name: ifname,
        mtu: net.mtu,
        bridge_index: 0,
        peer_netns_fd: netns.as_raw_fd(),
    };
    let out = netlink::run_here(|h| async move {
        let bridge = netlink::link::ensure_bridge(&h, &conf.bridge, net.mtu).await?;
        for f in &net.families {
            netlink::addr::ensure(&h, bridge.index, f.gateway.0).await?;
        }
        let spec = VethSpec {
            bridge_index: bridge.index,
            ..spec
        };
        match netlink::link::create_veth(&h, &spec).await {
            Ok(()) => {}
            Err((Some(libc::EEXIST), first)) => {
                // A host end with our name is a leftover of a crashed ADD
                // for this same attachment: remove it and try once more.
                if netlink::link::delete_by_name(&h, host_veth).await? {
                    tracing::warn!(veth = host_veth, "removed a leftover host veth");
                    netlink::link::create_veth(&h, &spec)
                        .await
                        .map_err(|(_, e)| e)?;
                } else {
                    return Err(NetlinkError::Unexpected {
                        op: format!("create veth {host_veth} <-> {ifname}"),
                        detail: format!("{first}; interface {ifname} probably exists already in the container's netns"),
                    });
                }
            }
            Err((_, e)) => return Err(e),
        }
        let host = netlink::link::by_name(&h, host_veth)
            .await?
            .ok_or_else(|| NetlinkError::Unexpected {
                op: format!("create veth {host_veth}"),
                detail: "host end missing right after creation".into(),
            })?;
        if conf.hairpin_mode {
            netlink::link::set_hairpin(&h, host.index, host_veth, true).await?;
        }
        Ok((bridge, host))
    })?;
    Ok(out)
}

/// The node forwards between pods and the world; this is per netns.
fn enable_forwarding(net: &Network) -> Result<()> {
    use netlink::sysctl;
    for f in &net.families {
        let path = if f.gateway.0.is_ipv4() {
            sysctl::IPV4_FORWARD
        } else {
            sysctl::IPV6_FORWARD
        };
        sysctl::ensure(path, "1").map_err(|source| Error::Io {
            what: format!("enable forwarding ({path})"),
            source,
        })?;
    }
    Ok(())
}

/// Default route per family via the bridge, or only the cluster network
/// when the pod must not take the default route from us.
fn pod_routes(families: &[Family], default_gateway: bool) -> Vec<(IpNetwork, IpAddr)> {
    families
        .iter()
        .filter_map(|f| {
            let dst = if default_gateway {
                let any = if f.gateway.0.is_ipv4() {
                    "0.0.0.0/0"
                } else {
                    "::/0"
                };
                any.parse().ok()?
            } else {
                f.cluster?
            };
            Some((dst, f.gateway_ip()))
        })
        .collect()
}

fn pod_side(
    netns: &File,
    ifname: &str,
    addrs: &[IpNetwork],
    routes: &[(IpNetwork, IpAddr)],
) -> Result<LinkInfo> {
    let pod = netlink::run_in_netns(netns, |h| async move {
        let link =
            netlink::link::by_name(&h, ifname)
                .await?
                .ok_or_else(|| NetlinkError::Unexpected {
                    op: format!("configure {ifname}"),
                    detail: "the pod end of the veth is not in the netns".into(),
                })?;
        for a in addrs {
            netlink::addr::ensure(&h, link.index, *a).await?;
        }
        netlink::link::set_up(&h, link.index, ifname).await?;
        for (dst, gw) in routes {
            netlink::route::ensure(&h, *dst, Some(*gw), link.index).await?;
        }
        Ok(link)
    })?;
    Ok(pod)
}

/// Chained after another plugin: keep what it reported and append ours,
/// re-pointing our IPs' interface indexes past its interfaces.
fn merge_after(prev: &CniResult, mut ours: CniResult) -> CniResult {
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

    fn fam(gw: &str, cluster: Option<&str>) -> Family {
        Family {
            gateway: GatewayPrefix(gw.parse().expect("literal")),
            cluster: cluster.map(|c| c.parse().expect("literal")),
        }
    }

    #[test]
    fn routes_follow_is_default_gateway() {
        let f = [
            fam("10.244.1.1/24", Some("10.244.0.0/16")),
            fam("fd00::1/64", None),
        ];
        let r = pod_routes(&f, true);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].0.to_string(), "0.0.0.0/0");
        assert_eq!(r[1].0.to_string(), "::/0");
        let r = pod_routes(&f, false);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].0.to_string(), "10.244.0.0/16");
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
