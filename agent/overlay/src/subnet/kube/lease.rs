//! The kube subnet manager's `SubnetManager` face: the network config from
//! the local net-conf file, the lease from the Node's podCIDR (assigned by
//! the control plane, never here) plus the annotations it publishes.

use std::future::Future;

use ipnetwork::Ipv4Network;
use kube::api::{Patch, PatchParams};
use tokio::sync::mpsc;

use crate::subnet::config::NetworkConfig;
use crate::subnet::kube::annotations::{
    annotations_patch, attrs_for_node, lease_from_node, node_subnet, node_subnet_v6, published,
};
use crate::subnet::kube::nodes::{unavailable, waiting, KubeSubnetManager};
use crate::subnet::lease::{Lease, LeaseAttrs, LeaseList, StoreError, WatchItem};
use crate::subnet::manager::{AcquireError, SubnetManager};

impl SubnetManager for KubeSubnetManager {
    async fn network_config(&self) -> Result<NetworkConfig, StoreError> {
        let (cfg, ignored) = crate::subnet::kube::net_conf::load(&self.net_conf)?;
        for i in &ignored {
            tracing::warn!(config = %self.net_conf.display(), key = %i.key, "network config key ignored: {}", i.why);
        }
        Ok(cfg)
    }

    async fn acquire(
        &self,
        cfg: &NetworkConfig,
        attrs: &LeaseAttrs,
        _previous: Option<Ipv4Network>,
    ) -> Result<Lease, AcquireError> {
        let node = self
            .nodes
            .get_opt(&self.node_name)
            .await
            .map_err(|e| unavailable("get own node", e))?
            .ok_or_else(|| {
                waiting(
                    "get own node",
                    format!("node {} is not registered yet", self.node_name),
                )
            })?;
        // The control plane assigns the CIDR; until it has, wait like flannel.
        let subnet = node_subnet(&node).ok_or_else(|| {
            waiting(
                "read node podCIDR",
                format!("node {} has no spec.podCIDR yet", self.node_name),
            )
        })?;
        if !cfg.network.contains(subnet.network()) || subnet.prefix() < cfg.network.prefix() {
            return Err(StoreError::BadLease {
                key: format!("node {} spec.podCIDR", self.node_name),
                reason: format!("{subnet} is outside the cluster network {}", cfg.network),
            }
            .into());
        }
        let attrs = &attrs_for_node(cfg, attrs, &node, &self.node_name);
        let node = if published(&node, attrs) {
            node
        } else {
            self.nodes
                .patch(
                    &self.node_name,
                    &PatchParams::default(),
                    &Patch::Merge(annotations_patch(attrs)),
                )
                .await
                .map_err(|e| unavailable("annotate own node", e))?
        };
        lease_from_node(&node).ok_or_else(|| {
            StoreError::BadLease {
                key: format!("node {}", self.node_name),
                reason: "annotations did not stick".into(),
            }
            .into()
        })
    }

    async fn renew(&self, lease: &Lease) -> Result<bool, StoreError> {
        // Nothing expires in kube mode; the lease lives while the node keeps
        // its CIDRs. A changed IPv6 one re-acquires too, which re-publishes
        // the v6 annotation and rewrites the subnet file.
        let node = self
            .nodes
            .get_opt(&self.node_name)
            .await
            .map_err(|e| unavailable("get own node", e))?;
        Ok(node.is_some_and(|n| {
            node_subnet(&n) == Some(lease.subnet) && node_subnet_v6(&n) == lease.attrs.ipv6_subnet
        }))
    }

    fn list(&self) -> impl Future<Output = Result<LeaseList, StoreError>> + Send {
        self.list_leases()
    }

    fn watch(
        &self,
        revision_from: i64,
    ) -> impl Future<Output = Result<mpsc::Receiver<Result<WatchItem, StoreError>>, StoreError>> + Send
    {
        self.watch_nodes(revision_from)
    }
}
