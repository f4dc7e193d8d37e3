//! Traffic policies: which endpoints each kind of traffic may use.

use crate::model::endpoints::usable;
use crate::model::{Endpoint, ServicePortInfo};

/// A service port's usable endpoints, by the traffic that may use them.
pub(super) struct Usable<'e> {
    /// For ClusterIPs (internalTrafficPolicy applied).
    pub internal: Vec<&'e Endpoint>,
    /// For external IPs, load-balancer IPs and NodePorts under
    /// externalTrafficPolicy Cluster, and for pod or node traffic to them.
    pub cluster: Vec<&'e Endpoint>,
    /// For outside traffic to external destinations under
    /// externalTrafficPolicy Local.
    pub local: Vec<&'e Endpoint>,
}

impl<'e> Usable<'e> {
    /// As kube-proxy's CategorizeEndpoints: internalTrafficPolicy
    /// restricts traffic to the ClusterIPs only; external destinations use
    /// every endpoint (Cluster) or this node's (Local), and pod or node
    /// traffic to an external destination short-circuits to every endpoint.
    pub fn new(eps: &'e [Endpoint], info: &ServicePortInfo, node: &str) -> Usable<'e> {
        Usable {
            internal: usable(eps, info.internal_local.then_some(node)),
            cluster: usable(eps, None),
            local: usable(eps, Some(node)),
        }
    }

    /// Reject only a service without a usable endpoint anywhere; a Local
    /// policy without one on this node drops instead (kube-proxy does: the
    /// client must not take "refused" for "the service is down").
    pub fn reject(&self) -> bool {
        self.cluster.is_empty()
    }
}
