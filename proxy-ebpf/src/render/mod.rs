//! Desired model → nft objects for one service and one address family:
//! map elements, and for the few services that need them their own chains
//! and affinity sets. Pure; it must never compare with what is programmed
//! (plan.rs does) nor run nft.
//!
//! Most services own no chain and no rule: a destination's element in
//! `service-ips`/`service-nodeports` sends it to a shared `pick-<kind>-<n>`
//! chain (`dnat to <destination> . numgen random mod n map @endpoints`),
//! and the service's endpoints are elements of the `endpoints` maps keyed
//! by destination and slot. An endpoint change is then a change of
//! non-verdict elements only: no nft run, no rule, and the kernel does not
//! re-validate the table's chains. Services with session affinity or
//! externalTrafficPolicy Local keep chains of their own: `service-*` picks
//! among cluster endpoints, `external-*` is the external entry (goes to
//! `local-*` for outside clients), and with affinity one `endpoint-*`
//! chain per endpoint refreshes the affinity set and DNATs. Hairpin
//! traffic is masqueraded by the skeleton's `hairpin` set.

mod affinity;
mod context;
mod destinations;
mod names;
mod own_chains;
mod pick_rules;
mod policy;
mod rendered;
mod shared;
#[cfg(test)]
mod tests;

use crate::model::{Endpoint, IpFamily, ServicePortInfo, ServicePortName};
use crate::tracker::ServiceState;

pub use context::Context;
pub use names::chain_name;
pub use rendered::{ElementKey, Rendered};

use policy::Usable;

/// Renders every port of one service for `ctx.family`.
pub fn render_service(ctx: &Context, state: &ServiceState) -> Rendered {
    let mut out = Rendered::default();
    for (spn, (info, eps)) in state {
        out.merge(render_port(ctx, spn, info, eps));
    }
    out
}

pub fn render_port(
    ctx: &Context,
    spn: &ServicePortName,
    info: &ServicePortInfo,
    eps: &[Endpoint],
) -> Rendered {
    let f = ctx.family;
    let mut out = Rendered::default();
    let cluster_ips = destinations::cluster_ips(info, f);
    if cluster_ips.is_empty() {
        return out; // single-stack service of the other family
    }
    let eps: Vec<Endpoint> = eps
        .iter()
        .filter(|e| IpFamily::of(&e.ip) == f)
        .cloned()
        .collect();
    let usable = Usable::new(&eps, info, &ctx.node_name);
    if info.affinity_timeout_s.is_none() && !info.external_local {
        shared::render(ctx, info, &cluster_ips, &usable, &mut out);
    } else {
        own_chains::render(ctx, spn, info, &cluster_ips, &usable, &mut out);
    }
    out
}
