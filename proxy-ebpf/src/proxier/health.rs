//! Health-check node ports: which services have one, and how many local
//! endpoints each has (the health server answers from this).

use std::collections::BTreeMap;

use crate::model::endpoints::usable;
use crate::model::ServiceKey;
use crate::tracker::ServiceState;

use super::Proxy;

/// One health-check node port: which service, how many local endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub service: ServiceKey,
    pub local_endpoints: usize,
}

impl Proxy {
    /// The health-check node ports to serve, with their local endpoint counts.
    pub fn health_checks(&self) -> BTreeMap<u16, HealthCheck> {
        self.health
            .iter()
            .map(|(k, (port, n))| {
                (
                    *port,
                    HealthCheck {
                        service: k.clone(),
                        local_endpoints: *n,
                    },
                )
            })
            .collect()
    }

    pub(super) fn update_health(&mut self, key: &ServiceKey, state: &ServiceState, node: &str) {
        self.health.remove(key);
        for (info, eps) in state.values() {
            if let Some(port) = info.health_check_node_port {
                let n = usable(eps, Some(node)).len();
                self.health.insert(key.clone(), (port, n));
            }
        }
    }
}
