//! Services with chains of their own (session affinity, or
//! externalTrafficPolicy Local): `service-*` picks among the endpoints
//! ClusterIP traffic may use, `cluster-*` among every endpoint when
//! internalTrafficPolicy Local narrowed the service chain, `external-*` is
//! the external entry and `local-*` picks among this node's endpoints for
//! outside clients. The service's destinations go to these chains.

use std::net::IpAddr;

use crate::model::{IpFamily, ServicePortInfo, ServicePortName};
use crate::nft::element::{Key, Value};
use crate::nft::expr::*;
use crate::nft::skeleton::{MARK_FOR_MASQUERADE, NODEPORTS_MAP, SERVICE_IPS_MAP};

use super::affinity::EndpointChains;
use super::context::Context;
use super::destinations::{self, dest, externals};
use super::names::chain_name;
use super::pick_rules::pick_rules;
use super::policy::Usable;
use super::rendered::Rendered;

pub(super) fn render(
    ctx: &Context,
    spn: &ServicePortName,
    info: &ServicePortInfo,
    cluster_ips: &[IpAddr],
    eps: &Usable<'_>,
    out: &mut Rendered,
) {
    let f = ctx.family;
    let base = spn.to_string();
    let proto_match = rule(&[L4PROTO, info.protocol.nft()]);
    let all_eps = || {
        eps.internal
            .iter()
            .chain(&eps.cluster)
            .chain(&eps.local)
            .copied()
    };
    let endpoint_chains = match info.affinity_timeout_s {
        Some(timeout) => EndpointChains::render(f, spn, timeout, &proto_match, all_eps(), out),
        None => EndpointChains::default(),
    };
    for ep in all_eps() {
        out.hairpin.insert(ep.ip);
    }
    let pick = |list: &[_]| pick_rules(f, &proto_match, list, &endpoint_chains);

    let cidr = ctx.cluster_cidr.filter(|(n, _)| IpFamily::of(n) == f);
    let service_chain = chain_name("service", &base);
    let mut rules = Vec::new();
    if let Some((net, len)) = cidr {
        // Off-cluster clients reaching a ClusterIP (e.g. routed through
        // this node) need their replies to come back here.
        rules.push(rule(&[
            &format!("{} != {}", saddr(f), prefix(net, len)),
            &jump(MARK_FOR_MASQUERADE),
        ]));
    }
    rules.extend(pick(&eps.internal));
    out.chains.insert(service_chain.clone(), rules);

    // External traffic that may use every endpoint: the service chain,
    // unless internalTrafficPolicy Local narrowed that one to this node.
    let cluster_chain = if info.internal_local && info.has_external() {
        let chain = chain_name("cluster", &base);
        out.chains.insert(chain.clone(), pick(&eps.cluster));
        chain
    } else {
        service_chain.clone()
    };

    let external_chain = chain_name("external", &base);
    if info.has_external() {
        let mut rules = Vec::new();
        if info.external_local {
            // Traffic from this node or its pods may use any endpoint;
            // only traffic from outside is restricted to local endpoints,
            // and keeps its client address.
            rules.push(rule(&[&fib_local("saddr"), &jump(MARK_FOR_MASQUERADE)]));
            rules.push(rule(&[&fib_local("saddr"), &goto(&cluster_chain)]));
            if let Some((net, len)) = cidr {
                rules.push(rule(&[
                    &format!("{} {}", saddr(f), prefix(net, len)),
                    &goto(&cluster_chain),
                ]));
            }
            let local_chain = chain_name("local", &base);
            out.chains.insert(local_chain.clone(), pick(&eps.local));
            rules.push(goto(&local_chain));
        } else {
            rules.push(jump(MARK_FOR_MASQUERADE));
            rules.push(goto(&cluster_chain));
        }
        out.chains.insert(external_chain.clone(), rules);
    }

    if eps.reject() {
        destinations::reject(info, cluster_ips, f, out);
        return;
    }
    let to = |chain: &String| Value::Goto(chain.clone());
    for ip in cluster_ips {
        out.elements
            .insert((SERVICE_IPS_MAP, dest(info, *ip)), to(&service_chain));
    }
    for ip in externals(info, f) {
        out.elements
            .insert((SERVICE_IPS_MAP, dest(info, *ip)), to(&external_chain));
    }
    if let Some(np) = info.node_port {
        let key = Key::NodePort {
            proto: info.protocol,
            port: np,
        };
        out.elements
            .insert((NODEPORTS_MAP, key), to(&external_chain));
    }
}
