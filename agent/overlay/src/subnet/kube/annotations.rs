//! The kube subnet manager (flannel's `--kube-subnet-mgr`): for clusters
//! whose etcd the agent cannot reach. A node's subnet is its Node's
//! `spec.podCIDR` (assigned by the control plane, never by this module);
//! the lease attributes peers need (public IP, backend, VTEP MAC) are
//! published as annotations on the agent's own Node, and peers are every
//! Node that carries both. The network config comes from a local file.
//!
//! Dual stack (net-conf with `IPv6Network`): the node's IPv6 subnet is the
//! IPv6 entry of its `spec.podCIDRs`, and its IPv6 VTEP is published as
//! `capstan.io/backend-v6-data` (flannel: `backend-v6-data`). flannel also
//! publishes `public-ipv6`, the IPv6 underlay address its separate
//! `flannel-v6.<VNI>` device tunnels to. Capstan's underlay is IPv4 and IPv6
//! rides the same VXLAN device as IPv4 (see `vxlan.rs`, as in etcd mode), so
//! the outer destination of a peer's IPv6 traffic is its `public-ip` and
//! there is no IPv6 public address to publish.

use std::future::Future;
use std::path::PathBuf;

use futures::{StreamExt, TryStreamExt};
use ipnetwork::{Ipv4Network, Ipv6Network};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use tokio::sync::mpsc;

use crate::subnet::config::{ConfigError, NetworkConfig};
use crate::subnet::etcd::manager::{AcquireError, SubnetManager};
use crate::subnet::lease::{
    BackendData, Lease, LeaseAttrs, LeaseEvent, LeaseId, LeaseList, StoreError, WatchItem,
};
use crate::types::NodeIp;

/// Annotations on a Node that make it a peer (flannel uses the same trio
/// under `flannel.alpha.coreos.com/`).
pub const ANN_PUBLIC_IP: &str = "capstan.io/public-ip";
pub const ANN_BACKEND_TYPE: &str = "capstan.io/backend-type";
pub const ANN_BACKEND_DATA: &str = "capstan.io/backend-data";
/// Dual stack: the VTEP that carries IPv6 (flannel's `backend-v6-data`).
pub const ANN_BACKEND_V6_DATA: &str = "capstan.io/backend-v6-data";

/// Default location of the network config in kube mode (flannel's is
/// /etc/kube-flannel/net-conf.json; same JSON as the etcd config key).
pub const DEFAULT_NET_CONF: &str = "/etc/capstan/net-conf.json";

pub struct KubeSubnetManager {
    nodes: Api<Node>,
    node_name: String,
    net_conf: PathBuf,
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

fn unavailable(op: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Unavailable {
        op,
        source: Box::new(e),
    }
}

fn waiting(op: &'static str, why: String) -> StoreError {
    StoreError::Unavailable {
        op,
        source: why.into(),
    }
}

/// A resourceVersion as the overlay's revision. Kubernetes calls it opaque;
/// both kube-apiserver and capstan-control use etcd revisions, so it parses.
fn revision(rv: Option<&str>) -> i64 {
    rv.and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// The first IPv4 pod CIDR of a node (`podCIDRs` wins over `podCIDR`).
pub fn node_subnet(node: &Node) -> Option<Ipv4Network> {
    let spec = node.spec.as_ref()?;
    let cidrs = spec.pod_cidrs.iter().flatten().chain(spec.pod_cidr.iter());
    cidrs
        .filter_map(|c| c.parse::<Ipv4Network>().ok())
        .map(|n| Ipv4Network::new(n.network(), n.prefix()).unwrap_or(n))
        .next()
}

/// The node's IPv6 pod CIDR (dual-stack: an IPv6 entry of `podCIDRs`,
/// normally the second).
pub fn node_subnet_v6(node: &Node) -> Option<Ipv6Network> {
    let spec = node.spec.as_ref()?;
    let cidrs = spec.pod_cidrs.iter().flatten().chain(spec.pod_cidr.iter());
    cidrs
        .filter_map(|c| c.parse::<Ipv6Network>().ok())
        .map(|n| Ipv6Network::new(n.network(), n.prefix()).unwrap_or(n))
        .next()
}

/// The lease a node stands for, when it has a pod CIDR and has published
/// its attributes. Nodes that haven't yet are simply not peers.
pub fn lease_from_node(node: &Node) -> Option<Lease> {
    let subnet = node_subnet(node)?;
    let ann = node.metadata.annotations.as_ref()?;
    let public_ip: NodeIp = ann.get(ANN_PUBLIC_IP)?.parse().ok()?;
    let backend_type = ann.get(ANN_BACKEND_TYPE)?.clone();
    let backend_data: BackendData = match ann.get(ANN_BACKEND_DATA) {
        Some(s) => serde_json::from_str(s).ok()?,
        None => BackendData::default(),
    };
    // Unreadable v6 data does not cost the peer its IPv4 path: absent v6
    // data means the IPv4 VTEP carries both families (the lease's meaning).
    let backend_v6_data: Option<BackendData> = ann
        .get(ANN_BACKEND_V6_DATA)
        .and_then(|s| serde_json::from_str(s).ok());
    Some(Lease {
        subnet,
        attrs: LeaseAttrs {
            public_ip,
            backend_type,
            backend_data,
            node_name: node.metadata.name.clone().unwrap_or_default(),
            ipv6_subnet: node_subnet_v6(node),
            backend_v6_data,
        },
        id: LeaseId(0),
        mod_revision: revision(node.metadata.resource_version.as_deref()),
    })
}

/// The merge patch that publishes `attrs` on the node. Without IPv6 VTEP
/// data the v6 annotation is `null`, which a merge patch deletes: a node
/// that stops being dual-stack does not leave stale v6 data behind.
pub fn annotations_patch(attrs: &LeaseAttrs) -> serde_json::Value {
    let data = serde_json::to_string(&attrs.backend_data).unwrap_or_else(|_| "{}".into());
    let v6_data = attrs
        .backend_v6_data
        .as_ref()
        .and_then(|d| serde_json::to_string(d).ok());
    serde_json::json!({
        "metadata": {
            "annotations": {
                ANN_PUBLIC_IP: attrs.public_ip.to_string(),
                ANN_BACKEND_TYPE: attrs.backend_type,
                ANN_BACKEND_DATA: data,
                ANN_BACKEND_V6_DATA: v6_data,
            }
        }
    })
}

fn published(node: &Node, attrs: &LeaseAttrs) -> bool {
    lease_from_node(node).is_some_and(|l| {
        l.attrs.public_ip == attrs.public_ip
            && l.attrs.backend_type == attrs.backend_type
            && l.attrs.backend_data == attrs.backend_data
            && l.attrs.backend_v6_data == attrs.backend_v6_data
    })
}

/// The attributes this node publishes: like etcd mode's value, IPv6 VTEP
/// data only when the node has an IPv6 subnet inside the IPv6 network
/// (a peer must not route v6 towards a node that has no v6 pods).
fn attrs_for_node(cfg: &NetworkConfig, attrs: &LeaseAttrs, node: &Node, name: &str) -> LeaseAttrs {
    let mut a = attrs.clone();
    let v6 = node_subnet_v6(node);
    a.ipv6_subnet = match (cfg.ipv6_network, v6) {
        (Some(n6), Some(s6)) if n6.contains(s6.network()) && s6.prefix() >= n6.prefix() => Some(s6),
        (Some(n6), Some(s6)) => {
            tracing::warn!(node = name, subnet = %s6, network = %n6, "the node's IPv6 podCIDR is outside IPv6Network; running IPv4 only");
            None
        }
        (Some(n6), None) => {
            tracing::warn!(node = name, network = %n6, "IPv6Network is set but the node has no IPv6 entry in spec.podCIDRs; running IPv4 only");
            None
        }
        (None, _) => None,
    };
    if a.ipv6_subnet.is_none() {
        a.backend_v6_data = None;
    }
    a
}

impl KubeSubnetManager {
    async fn list_leases(&self) -> Result<LeaseList, StoreError> {
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

impl SubnetManager for KubeSubnetManager {
    async fn network_config(&self) -> Result<NetworkConfig, StoreError> {
        let key = self.net_conf.display().to_string();
        let bytes = match tokio::fs::read(&self.net_conf).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ConfigError::Missing { key }.into())
            }
            Err(e) => {
                return Err(ConfigError::Malformed {
                    key,
                    reason: e.to_string(),
                }
                .into())
            }
        };
        Ok(NetworkConfig::parse(&key, &bytes)?)
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

    async fn watch(
        &self,
        revision_from: i64,
    ) -> Result<mpsc::Receiver<Result<WatchItem, StoreError>>, StoreError> {
        let (tx, rx) = mpsc::channel(64);
        // The overlay asks "from this revision on"; Kubernetes watches
        // deliver what comes *after* a resourceVersion.
        let after = (revision_from - 1).max(0);
        // Opened here so that a refused watch is an error to the caller now.
        let first = self.open_watch(after).await?;
        let mut known = Known::default();
        known.reset(&self.list_leases().await?);
        let me = KubeSubnetManager {
            nodes: self.nodes.clone(),
            node_name: self.node_name.clone(),
            net_conf: self.net_conf.clone(),
        };
        tokio::spawn(async move {
            let mut stream = first;
            // The last revision seen: a resumed watch starts after it.
            let mut rev = after;
            loop {
                let event = match stream.try_next().await {
                    Ok(Some(ev)) => ev,
                    // The server ends every watch after its timeout: resume.
                    Ok(None) => match me.open_watch(rev).await {
                        Ok(s) => {
                            stream = s;
                            continue;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                    },
                    Err(e) => {
                        let _ = tx.send(Err(unavailable("watch nodes", e))).await;
                        return;
                    }
                };
                let item = match event {
                    WatchEvent::Added(n) | WatchEvent::Modified(n) => {
                        rev = revision(n.metadata.resource_version.as_deref()).max(rev);
                        Ok(WatchItem::Events {
                            events: known.put(&n),
                            revision: rev,
                        })
                    }
                    WatchEvent::Deleted(n) => {
                        rev = revision(n.metadata.resource_version.as_deref()).max(rev);
                        Ok(WatchItem::Events {
                            events: known.delete(&n),
                            revision: rev,
                        })
                    }
                    WatchEvent::Bookmark(b) => {
                        rev = revision(Some(&b.metadata.resource_version)).max(rev);
                        Ok(WatchItem::Events {
                            events: Vec::new(),
                            revision: rev,
                        })
                    }
                    // Fell out of the server's window: hand over a full list
                    // and go on from its revision.
                    WatchEvent::Error(e) if e.code == 410 => match me.list_leases().await {
                        Ok(list) => {
                            known.reset(&list);
                            rev = list.revision;
                            match me.open_watch(rev).await {
                                Ok(s) => {
                                    stream = s;
                                    Ok(WatchItem::Resync(list))
                                }
                                Err(e) => Err(e),
                            }
                        }
                        Err(e) => Err(e),
                    },
                    WatchEvent::Error(e) => Err(waiting("watch nodes", e.message)),
                };
                let stop = item.is_err();
                if tx.send(item).await.is_err() || stop {
                    return;
                }
            }
        });
        Ok(rx)
    }
}

type NodeEvents = futures::stream::BoxStream<'static, kube::Result<WatchEvent<Node>>>;

impl KubeSubnetManager {
    /// A watch of every node for changes after revision `rev`.
    async fn open_watch(&self, rev: i64) -> Result<NodeEvents, StoreError> {
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

/// The subnet each node stood for at the last event: a node that loses its
/// CIDR or annotations, or gets another CIDR, is a delete of the old one.
#[derive(Default)]
struct Known(std::collections::HashMap<String, Ipv4Network>);

impl Known {
    fn reset(&mut self, list: &LeaseList) {
        self.0 = list
            .leases
            .iter()
            .map(|l| (l.attrs.node_name.clone(), l.subnet))
            .collect();
    }

    fn put(&mut self, n: &Node) -> Vec<LeaseEvent> {
        let name = n.metadata.name.clone().unwrap_or_default();
        let mut events = Vec::new();
        match lease_from_node(n) {
            Some(l) => {
                if let Some(old) = self.0.insert(name, l.subnet) {
                    if old != l.subnet {
                        events.push(LeaseEvent::Delete(old));
                    }
                }
                events.push(LeaseEvent::Put(l));
            }
            None => events.extend(self.0.remove(&name).map(LeaseEvent::Delete)),
        }
        events
    }

    fn delete(&mut self, n: &Node) -> Vec<LeaseEvent> {
        let name = n.metadata.name.clone().unwrap_or_default();
        self.0
            .remove(&name)
            .or_else(|| node_subnet(n))
            .map(LeaseEvent::Delete)
            .into_iter()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NodeSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node(name: &str, cidr: Option<&str>, ann: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                resource_version: Some("42".into()),
                annotations: Some(
                    ann.iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                pod_cidr: cidr.map(String::from),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn a_node_with_cidr_and_annotations_is_a_lease() {
        let n = node(
            "node-1",
            Some("10.244.3.0/24"),
            &[
                (ANN_PUBLIC_IP, "192.168.250.11"),
                (ANN_BACKEND_TYPE, "vxlan"),
                (ANN_BACKEND_DATA, r#"{"VtepMAC":"02:00:00:00:00:01"}"#),
            ],
        );
        let l = lease_from_node(&n).expect("lease");
        assert_eq!(l.subnet, "10.244.3.0/24".parse().unwrap());
        assert_eq!(l.attrs.node_name, "node-1");
        assert_eq!(l.attrs.backend_type, "vxlan");
        assert_eq!(l.mod_revision, 42);
        assert!(l.attrs.backend_data.vtep_mac.is_some());
    }

    #[test]
    fn dual_stack_pod_cidrs_give_the_ipv6_subnet() {
        let mut n = node(
            "node-1",
            Some("10.244.3.0/24"),
            &[
                (ANN_PUBLIC_IP, "192.168.250.11"),
                (ANN_BACKEND_TYPE, "vxlan"),
            ],
        );
        assert_eq!(lease_from_node(&n).unwrap().attrs.ipv6_subnet, None);
        if let Some(spec) = n.spec.as_mut() {
            spec.pod_cidrs = Some(vec!["10.244.3.0/24".into(), "fd00:10:244:3::/64".into()]);
        }
        let l = lease_from_node(&n).unwrap();
        assert_eq!(l.subnet, "10.244.3.0/24".parse().unwrap());
        assert_eq!(
            l.attrs.ipv6_subnet,
            Some("fd00:10:244:3::/64".parse().unwrap())
        );
    }

    #[test]
    fn nodes_without_cidr_or_annotations_are_not_peers() {
        assert!(lease_from_node(&node("a", None, &[(ANN_PUBLIC_IP, "1.2.3.4")])).is_none());
        assert!(lease_from_node(&node("b", Some("10.244.1.0/24"), &[])).is_none());
        assert!(lease_from_node(&node(
            "c",
            Some("10.244.1.0/24"),
            &[(ANN_PUBLIC_IP, "not-an-ip"), (ANN_BACKEND_TYPE, "vxlan")]
        ))
        .is_none());
    }

    #[test]
    fn the_patch_round_trips_through_a_node() {
        let attrs = LeaseAttrs {
            public_ip: "192.168.250.12".parse().unwrap(),
            backend_type: "host-gw".into(),
            backend_data: BackendData::default(),
            node_name: "node-2".into(),
            ipv6_subnet: None,
            backend_v6_data: None,
        };
        let patch = annotations_patch(&attrs);
        let ann: Vec<(String, String)> = patch["metadata"]["annotations"]
            .as_object()
            .unwrap()
            .iter()
            // `null` deletes: no v6 annotation on a single-stack node.
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect();
        let refs: Vec<(&str, &str)> = ann.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let n = node("node-2", Some("10.244.9.0/24"), &refs);
        assert!(published(&n, &attrs));
        assert_eq!(lease_from_node(&n).unwrap().attrs, attrs);
    }

    fn dual_stack_node(v6: &str, ann: &[(&str, &str)]) -> Node {
        let mut n = node("node-3", Some("10.244.3.0/24"), ann);
        if let Some(spec) = n.spec.as_mut() {
            spec.pod_cidrs = Some(vec!["10.244.3.0/24".into(), v6.into()]);
        }
        n
    }

    fn vxlan_attrs() -> LeaseAttrs {
        let data = BackendData {
            vtep_mac: Some("02:00:00:00:00:03".parse().unwrap()),
        };
        LeaseAttrs {
            public_ip: "192.168.250.13".parse().unwrap(),
            backend_type: "vxlan".into(),
            backend_data: data.clone(),
            node_name: "node-3".into(),
            ipv6_subnet: None,
            backend_v6_data: Some(data),
        }
    }

    fn dual_cfg() -> NetworkConfig {
        NetworkConfig::parse(
            "net-conf.json",
            br#"{"Network":"10.244.0.0/16","IPv6Network":"fd00:10:244::/56","Backend":{"Type":"vxlan"}}"#,
        )
        .unwrap()
    }

    #[test]
    fn dual_stack_publishes_and_reads_the_v6_vtep() {
        let bare = dual_stack_node("fd00:10:244:3::/64", &[]);
        let attrs = attrs_for_node(&dual_cfg(), &vxlan_attrs(), &bare, "node-3");
        assert_eq!(
            attrs.ipv6_subnet,
            Some("fd00:10:244:3::/64".parse().unwrap())
        );
        let patch = annotations_patch(&attrs);
        let v6 = patch["metadata"]["annotations"][ANN_BACKEND_V6_DATA]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(v6, r#"{"VtepMAC":"02:00:00:00:00:03"}"#);
        let n = dual_stack_node(
            "fd00:10:244:3::/64",
            &[
                (ANN_PUBLIC_IP, "192.168.250.13"),
                (ANN_BACKEND_TYPE, "vxlan"),
                (ANN_BACKEND_DATA, r#"{"VtepMAC":"02:00:00:00:00:03"}"#),
                (ANN_BACKEND_V6_DATA, &v6),
            ],
        );
        assert!(published(&n, &attrs));
        assert_eq!(lease_from_node(&n).unwrap().attrs, attrs);
        // Published before the v6 data existed: not published, so re-patched.
        let old = dual_stack_node(
            "fd00:10:244:3::/64",
            &[
                (ANN_PUBLIC_IP, "192.168.250.13"),
                (ANN_BACKEND_TYPE, "vxlan"),
                (ANN_BACKEND_DATA, r#"{"VtepMAC":"02:00:00:00:00:03"}"#),
            ],
        );
        assert!(!published(&old, &attrs));
    }

    #[test]
    fn no_v6_data_without_a_v6_subnet_in_the_network() {
        let cfg = dual_cfg();
        let single = node("node-3", Some("10.244.3.0/24"), &[]);
        let outside = dual_stack_node("fd00:99::/64", &[]);
        for n in [&single, &outside] {
            let a = attrs_for_node(&cfg, &vxlan_attrs(), n, "node-3");
            assert_eq!((a.ipv6_subnet, a.backend_v6_data.clone()), (None, None));
            assert!(
                annotations_patch(&a)["metadata"]["annotations"][ANN_BACKEND_V6_DATA].is_null()
            );
        }
        let v4_only = NetworkConfig::parse("c", br#"{"Network":"10.244.0.0/16"}"#).unwrap();
        let inside = dual_stack_node("fd00:10:244:3::/64", &[]);
        let a = attrs_for_node(&v4_only, &vxlan_attrs(), &inside, "node-3");
        assert_eq!(a.backend_v6_data, None);
    }

    #[test]
    fn malformed_v6_data_keeps_the_ipv4_peer() {
        let n = dual_stack_node(
            "fd00:10:244:3::/64",
            &[
                (ANN_PUBLIC_IP, "192.168.250.13"),
                (ANN_BACKEND_TYPE, "vxlan"),
                (ANN_BACKEND_DATA, r#"{"VtepMAC":"02:00:00:00:00:03"}"#),
                (ANN_BACKEND_V6_DATA, "{not json"),
            ],
        );
        let l = lease_from_node(&n).expect("still a peer");
        assert_eq!(l.attrs.backend_v6_data, None);
        assert!(l.attrs.backend_data.vtep_mac.is_some());
    }

    #[test]
    fn known_turns_node_changes_into_lease_events() {
        let ann = [
            (ANN_PUBLIC_IP, "192.168.250.11"),
            (ANN_BACKEND_TYPE, "vxlan"),
        ];
        let mut k = Known::default();
        let a = node("n1", Some("10.244.1.0/24"), &ann);
        assert!(matches!(k.put(&a)[..], [LeaseEvent::Put(_)]));
        // A new CIDR deletes the old subnet first.
        let b = node("n1", Some("10.244.2.0/24"), &ann);
        let ev = k.put(&b);
        assert_eq!(ev[0], LeaseEvent::Delete("10.244.1.0/24".parse().unwrap()));
        assert!(matches!(ev[1], LeaseEvent::Put(_)));
        // Losing the annotations makes it no peer any more.
        let c = node("n1", Some("10.244.2.0/24"), &[]);
        assert_eq!(
            k.put(&c),
            vec![LeaseEvent::Delete("10.244.2.0/24".parse().unwrap())]
        );
        assert!(k.put(&c).is_empty());
        k.put(&b);
        assert_eq!(
            k.delete(&b),
            vec![LeaseEvent::Delete("10.244.2.0/24".parse().unwrap())]
        );
    }

    #[test]
    fn pod_cidrs_win_and_host_bits_are_dropped() {
        let mut n = node("n", Some("10.244.1.0/24"), &[]);
        if let Some(s) = n.spec.as_mut() {
            s.pod_cidrs = Some(vec!["fd00::/64".into(), "10.244.7.5/24".into()]);
        }
        assert_eq!(node_subnet(&n), Some("10.244.7.0/24".parse().unwrap()));
    }
}
