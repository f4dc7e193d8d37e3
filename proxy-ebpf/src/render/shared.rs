//! Services that own no chain (no affinity, externalTrafficPolicy
//! Cluster): elements only. Every destination (ClusterIP, external IP,
//! NodePort) goes to the shared pick chain for its kind and endpoint
//! count, and gets one `endpoints` element per slot, so an endpoint change
//! is a change of non-verdict elements only.

use std::net::IpAddr;

use crate::model::{Endpoint, ServicePortInfo};
use crate::nft::element::{Key, Value};
use crate::nft::skeleton::{
    endpoints_map, nodeport_endpoints_map, Pick, PickKind, NODEPORTS_MAP, SERVICE_IPS_MAP,
};

use super::context::Context;
use super::destinations::{self, dest, externals};
use super::policy::Usable;
use super::rendered::Rendered;

pub(super) fn render(
    ctx: &Context,
    info: &ServicePortInfo,
    cluster_ips: &[IpAddr],
    eps: &Usable<'_>,
    out: &mut Rendered,
) {
    if eps.reject() {
        destinations::reject(info, cluster_ips, ctx.family, out);
        return;
    }
    let (proto, port) = (info.protocol, info.port);
    for ep in eps.internal.iter().chain(&eps.cluster) {
        out.hairpin.insert(ep.ip);
    }
    let targets = |list: &[&Endpoint]| -> Vec<(u32, Value)> {
        list.iter()
            .enumerate()
            .map(|(i, e)| (i as u32, Value::Target(e.ip, e.port)))
            .collect()
    };
    // Not rejected but nothing to pick from (internalTrafficPolicy Local
    // with no endpoint on this node): kube-proxy drops.
    let verdict = |out: &mut Rendered, kind: PickKind, n: usize| {
        if n == 0 {
            return Value::Drop;
        }
        let pick = Pick { kind, proto, n };
        let v = Value::Goto(pick.chain());
        out.picks.insert(pick);
        v
    };
    let dests: Vec<(IpAddr, PickKind, &[&Endpoint])> = cluster_ips
        .iter()
        .map(|ip| (*ip, PickKind::Cluster, eps.internal.as_slice()))
        .chain(
            externals(info, ctx.family).map(|ip| (*ip, PickKind::External, eps.cluster.as_slice())),
        )
        .collect();
    for (addr, kind, list) in dests {
        let v = verdict(out, kind, list.len());
        out.elements.insert((SERVICE_IPS_MAP, dest(info, addr)), v);
        for (slot, target) in targets(list) {
            let key = Key::DestSlot {
                addr,
                proto,
                port,
                slot,
            };
            out.elements.insert((endpoints_map(proto), key), target);
        }
    }
    if let Some(np) = info.node_port {
        let key = Key::NodePort { proto, port: np };
        let v = verdict(out, PickKind::NodePort, eps.cluster.len());
        out.elements.insert((NODEPORTS_MAP, key), v);
        for (slot, target) in targets(&eps.cluster) {
            let key = Key::NodePortSlot {
                proto,
                port: np,
                slot,
            };
            out.elements
                .insert((nodeport_endpoints_map(proto), key), target);
        }
    }
}
