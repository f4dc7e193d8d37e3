//! ADD: reserve addresses (under the IPAM lock only), then build the node
//! side (bridge, gateway address, veth pair straight into the pod, hairpin)
//! and the pod side (addresses, routes), one netlink socket per namespace.
//! Any failure or panic after the reservation is rolled back by `AddUndo`.

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

use ipnetwork::IpNetwork;
use rtnetlink::Handle;

use super::names::host_veth_name;
use super::result::{merge_after, Attached};
use super::undo::AddUndo;
use crate::config::{Family, Network, PluginConfig};
use crate::error::{Error, Result};
use crate::ipam::{plan_allocation, Owner, Pool, Store};
use crate::netlink::link::{random_local_mac, VethSpec};
use crate::netlink::{self, ForeignSocket, NetlinkError};
use crate::protocol::dispatch::Request;
use crate::protocol::CniResult;

pub fn add(req: &Request) -> Result<CniResult> {
    let conf = PluginConfig::from_json(&req.raw, &req.header.name)?;
    let net = conf.resolve()?;
    let (container_id, ifname) = super::attachment::attachment(req)?;
    // Decoded before any change, so a bad one fails with nothing to undo.
    let prev = req.header.prev_result().map_err(Error::Protocol)?;
    let netns_path = req
        .invocation
        .netns
        .clone()
        .ok_or_else(|| Error::Config("CNI_NETNS is required for ADD".into()))?;
    // Open the netns and a netlink socket inside it before reserving
    // anything: an unreachable netns must fail with no state to undo.
    let netns = File::open(&netns_path).map_err(|source| Error::Netns {
        path: netns_path.clone(),
        source,
    })?;
    let pod_socket = ForeignSocket::open_in(&netns).map_err(|e| match e {
        NetlinkError::Setup { source, .. } => Error::Netns {
            path: netns_path.clone(),
            source,
        },
        other => other.into(),
    })?;
    enable_forwarding(&net)?;
    if net.ip_masq {
        super::masquerade::ensure(&conf.name, &net, &conf.data_dir)?;
    }

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
        let (taken, held) = locked.taken_and_held(&owner)?;
        let last = locked.last_reserved(pools.len());
        let ips = plan_allocation(&pools, &taken, &held, &last)?;
        locked.reserve(&ips, &owner)?;
        ips
    };
    tracing::debug!(%owner, ?ips, "reserved");

    let host_veth = host_veth_name(&container_id, &ifname);
    let undo = AddUndo::new(&store, &owner, &host_veth);

    let pod_addrs: Vec<IpNetwork> = ips
        .iter()
        .zip(&net.families)
        .map(|(ip, f)| IpNetwork::new(*ip, f.gateway.prefix()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Config(format!("address/prefix: {e}")))?;
    let routes = pod_routes(&net.families, conf.is_default_gateway);
    let spec = VethSpec {
        host_name: &host_veth,
        peer_name: &ifname,
        mtu: net.mtu,
        bridge_index: 0,
        peer_netns_fd: netns.as_raw_fd(),
        host_mac: random_local_mac(1),
        peer_mac: random_local_mac(2),
    };
    let (conf_ref, net_ref, spec_ref, addrs_ref, routes_ref) =
        (&conf, &net, &spec, &pod_addrs, &routes);
    let bridge = netlink::run_with_foreign(Some(pod_socket), |node, pod| async move {
        let pod = pod.ok_or_else(|| NetlinkError::Unexpected {
            op: "open pod netlink".into(),
            detail: "no pod socket".into(),
        })?;
        let bridge = netlink::link::ensure_bridge(&node, &conf_ref.bridge, net_ref.mtu).await?;
        // Independent requests go out together (one connection task per
        // namespace multiplexes them): the gateway addresses on the bridge
        // do not gate the veth, and the pod side needs only the veth. An
        // ADD is a handful of netlink round trips; overlapping them is
        // most of what is left to gain after process start.
        let gateways = gateway_addresses(&node, bridge.index, net_ref);
        let veth_and_pod = async {
            let pod_index = veth(&node, conf_ref, bridge.index, spec_ref).await?;
            pod_side(&pod, spec_ref.peer_name, pod_index, addrs_ref, routes_ref).await
        };
        futures::try_join!(gateways, veth_and_pod)?;
        Ok(bridge)
    })?;
    undo.disarm();

    let attached = Attached {
        bridge: &bridge,
        host_veth: &host_veth,
        host_mac: spec.host_mac,
        ifname: &ifname,
        pod_mac: spec.peer_mac,
        sandbox: &netns_path,
        mtu: net.mtu,
        addrs: &pod_addrs,
        families: &net.families,
        routes: &routes,
        dns: req.header.dns.clone().unwrap_or_default(),
    };
    let mut ours = attached.to_result();
    if let Some(prev) = &prev {
        ours = merge_after(prev, ours);
    }
    tracing::info!(%owner, ?ips, veth = %host_veth, "added");
    Ok(ours)
}

/// The gateway address of every family on the node's bridge.
async fn gateway_addresses(
    h: &Handle,
    bridge_index: u32,
    net: &Network,
) -> std::result::Result<(), NetlinkError> {
    for f in &net.families {
        netlink::addr::ensure(h, bridge_index, f.gateway.0).await?;
    }
    Ok(())
}

/// The veth pair (host end on the bridge, pod end moved into the pod's
/// netns at creation) and hairpin, in the namespace the plugin was called
/// in. Returns the pod end's index in the pod netns when the kernel told us.
async fn veth(
    h: &Handle,
    conf: &PluginConfig,
    bridge_index: u32,
    spec: &VethSpec<'_>,
) -> std::result::Result<Option<u32>, NetlinkError> {
    let spec = VethSpec {
        bridge_index,
        ..*spec
    };
    let (host_veth, ifname) = (spec.host_name, spec.peer_name);
    let pod_index = match netlink::link::create_veth(h, &spec).await {
        Ok(index) => index,
        Err((Some(libc::EEXIST), first)) => {
            // A host end with our name is a leftover of a crashed ADD for
            // this same attachment: remove it and try once more.
            if netlink::link::delete_by_name(h, host_veth).await? {
                tracing::warn!(veth = host_veth, "removed a leftover host veth");
                netlink::link::create_veth(h, &spec)
                    .await
                    .map_err(|(_, e)| e)?
            } else {
                return Err(NetlinkError::Unexpected {
                    op: format!("create veth {host_veth} <-> {ifname}"),
                    detail: format!("{first}; interface {ifname} probably exists already in the container's netns"),
                });
            }
        }
        Err((_, e)) => return Err(e),
    };
    if conf.hairpin_mode {
        netlink::link::set_hairpin(h, host_veth, true).await?;
    }
    Ok(pod_index)
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

async fn pod_side(
    h: &Handle,
    ifname: &str,
    known_index: Option<u32>,
    addrs: &[IpNetwork],
    routes: &[(IpNetwork, IpAddr)],
) -> std::result::Result<(), NetlinkError> {
    let index = match known_index {
        Some(index) => index,
        None => {
            netlink::link::by_name(h, ifname)
                .await?
                .ok_or_else(|| NetlinkError::Unexpected {
                    op: format!("configure {ifname}"),
                    detail: "the pod end of the veth is not in the netns".into(),
                })?
                .index
        }
    };
    // Addresses and link-up are independent; routes need both (a route
    // via the gateway needs the link up and the gateway on-link).
    let addresses = async {
        for a in addrs {
            netlink::addr::ensure(h, index, *a).await?;
        }
        Ok(())
    };
    futures::try_join!(addresses, netlink::link::set_up(h, index, ifname))?;
    for (dst, gw) in routes {
        netlink::route::ensure(h, *dst, Some(*gw), index).await?;
    }
    Ok(())
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
}
