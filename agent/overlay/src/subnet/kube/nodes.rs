//! The kube subnet manager's handle on the API server: the Node API of
//! the agent's client, the calls every part of it makes (list as leases,
//! watch from a revision) and how their failures read as `StoreError`s.

use std::path::PathBuf;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};

use crate::subnet::kube::annotations::{lease_from_node, revision};
use crate::subnet::lease::{LeaseList, StoreError};

/// Default location of the network config in kube mode (flannel's is
/// /etc/kube-flannel/net-conf.json; same JSON as the etcd config key).
pub const DEFAULT_NET_CONF: &str = "/etc/capstan/net-conf.json";

pub struct KubeSubnetManager {
    pub(super) nodes: Api<Node>,
    pub(super) node_name: String,
    pub(super) net_conf: PathBuf,
}

impl KubeSubnetManager {
    pub fn new(client: kube::Client, node_name: String, net_conf: PathBuf) -> Self {
        KubeSubnetManager {
            nodes: Api::all(client),
            node_name,
            net_conf,
        }
    }
}

pub(super) fn unavailable(
    op: &'static str,
    e: impl std::error::Error + Send + Sync + 'static,
) -> StoreError {
    StoreError::Unavailable {
        op,
        source: Box::new(e),
    }
}

pub(super) fn waiting(op: &'static str, why: String) -> StoreError {
    StoreError::Unavailable {
        op,
        source: why.into(),
    }
}

impl KubeSubnetManager {
    pub(super) async fn list_leases(&self) -> Result<LeaseList, StoreError> {
        let list = self
            .nodes
            .list(&ListParams::default())
            .await
            .map_err(|e| unavailable("list nodes", e))?;
        Ok(LeaseList {
            leases: list.items.iter().filter_map(lease_from_node).collect(),
            revision: revision(list.metadata.resource_version.as_deref()),
        })
    }
}

pub(super) type NodeEvents = futures::stream::BoxStream<'static, kube::Result<WatchEvent<Node>>>;

impl KubeSubnetManager {
    /// A watch of every node for changes after revision `rev`.
    pub(super) async fn open_watch(&self, rev: i64) -> Result<NodeEvents, StoreError> {
        let wp = WatchParams {
            bookmarks: true,
            ..WatchParams::default().timeout(290)
        };
        self.nodes
            .watch(&wp, &rev.to_string())
            .await
            .map(|s| s.boxed())
            .map_err(|e| unavailable("watch nodes", e))
    }
}
