//! CHECK: compare the live state with the prevResult ADD returned: the pod
//! interface (name, MAC, MTU), its addresses, our routes, the host end on
//! the bridge and the IPAM reservation. Read-only; must never repair.

use std::fs::File;
use std::net::IpAddr;

use super::attachment::attachment;
use super::names::host_veth_name;
use crate::config::PluginConfig;
use crate::error::{Error, Result};
use crate::ipam::{Owner, Store};
use crate::netlink::{self, ForeignSocket, NetlinkError};
use crate::protocol::dispatch::Request;

pub fn check(req: &Request) -> Result<()> {
    let conf = PluginConfig::from_json(&req.raw, &req.header.name)?;
    let net = conf.resolve()?;
    let (container_id, ifname) = attachment(req)?;
    let netns_path = req
        .invocation
        .netns
        .clone()
        .ok_or_else(|| Error::Config("CNI_NETNS is required for CHECK".into()))?;
    let prev = req
        .header
        .prev_result()
        .map_err(Error::Protocol)?
        .ok_or_else(|| Error::Config("CHECK needs prevResult (the result of the ADD)".into()))?;
    let prev = &prev;
    let sandbox = netns_path.display().to_string();
    let pod_index = prev
        .interfaces
        .iter()
        .position(|i| i.name == ifname && i.sandbox.as_deref() == Some(sandbox.as_str()))
        .ok_or_else(|| {
            Error::Check(format!(
                "prevResult lists no interface {ifname} in sandbox {sandbox}"
            ))
        })?;
    let pod_iface = &prev.interfaces[pod_index];
    let expected_ips: Vec<_> = prev
        .ips
        .iter()
        .filter(|ip| ip.interface == Some(pod_index))
        .collect();
    let gateways: Vec<IpAddr> = net.families.iter().map(|f| f.gateway_ip()).collect();
    let expected_routes: Vec<_> = prev
        .routes
        .iter()
        .filter(|r| r.gw.is_some_and(|g| gateways.contains(&g)))
        .collect();

    let owner = Owner::new(&container_id, &ifname);
    let held = Store::new(&conf.data_dir).lock()?.held_by(&owner)?;
    for ip in &expected_ips {
        if !held.contains(&ip.address.ip()) {
            return Err(Error::Check(format!(
                "address {} is not reserved for {owner} in IPAM",
                ip.address.ip()
            )));
        }
    }

    let netns = File::open(&netns_path).map_err(|source| Error::Netns {
        path: netns_path.clone(),
        source,
    })?;
    let (ifname_ref, sandbox_ref, net_ref) = (&ifname, &sandbox, &net);
    let (ips_ref, routes_ref) = (&expected_ips, &expected_routes);
    let pod_socket = ForeignSocket::open_in(&netns).map_err(|e| match e {
        NetlinkError::Setup {
            what: "setns",
            source,
        } => Error::Netns {
            path: netns_path.clone(),
            source,
        },
        other => other.into(),
    })?;
    let host = host_veth_name(&container_id, &ifname);
    let bridge_name = conf.bridge.clone();
    let (host_ref, bridge_ref) = (&host, &bridge_name);
    let problems = netlink::run_with_foreign(Some(pod_socket), |node, pod| async move {
        let (ifname, sandbox, net) = (ifname_ref, sandbox_ref, net_ref);
        let (host, bridge_name) = (host_ref, bridge_ref);
        let Some(h) = pod else {
            return Ok(vec!["no netlink socket in the pod netns".to_string()]);
        };
        let mut problems = Vec::new();
        let Some(link) = netlink::link::by_name(&h, ifname).await? else {
            return Ok(vec![format!(
                "interface {ifname} is missing from {sandbox}"
            )]);
        };
        if let (Some(want), Some(have)) = (&pod_iface.mac, &link.mac) {
            if !want.eq_ignore_ascii_case(have) {
                problems.push(format!("{ifname} has MAC {have}, ADD reported {want}"));
            }
        }
        if link.mtu != Some(net.mtu) {
            problems.push(format!(
                "{ifname} has MTU {:?}, the network's is {}",
                link.mtu, net.mtu
            ));
        }
        if !link.up {
            problems.push(format!("{ifname} is down"));
        }
        let addrs = netlink::addr::list(&h, link.index).await?;
        for ip in ips_ref {
            if !netlink::addr::contains(&addrs, ip.address.ip(), ip.address.prefix()) {
                problems.push(format!("{ifname} lacks address {}", ip.address));
            }
        }
        for r in routes_ref {
            let routes = netlink::route::list(&h, r.dst.is_ipv6()).await?;
            if !routes
                .iter()
                .any(|have| have.dst == r.dst && have.gw == r.gw)
            {
                problems.push(format!("route {} via {:?} is missing", r.dst, r.gw));
            }
        }
        let bridge = netlink::link::by_name(&node, bridge_name).await?;
        let veth = netlink::link::by_name(&node, host).await?;
        match (bridge, veth) {
            (Some(b), Some(v)) if v.controller == Some(b.index) => {}
            (None, _) => problems.push(format!("bridge {bridge_name} is missing")),
            (_, None) => problems.push(format!("host veth {host} is missing")),
            (Some(_), Some(_)) => {
                problems.push(format!("host veth {host} is not attached to {bridge_name}"))
            }
        }
        Ok(problems)
    })?;
    match problems.as_slice() {
        [] => Ok(()),
        _ => Err(Error::Check(problems.join("; "))),
    }
}
