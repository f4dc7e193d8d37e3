//! Node ↔ lease, as pure functions: which Node stands for which lease
//! (its `spec.podCIDR(s)` and the `capstan.io/*` annotations) and the merge
//! patch that publishes this node's attributes. No API calls here.

use ipnetwork::{Ipv4Network, Ipv6Network};
use k8s_openapi::api::core::v1::Node;

use crate::subnet::config::NetworkConfig;
use crate::subnet::lease::{BackendData, Lease, LeaseAttrs, LeaseId};
use crate::types::NodeIp;

/// Annotations on a Node that make it a peer (flannel uses the same trio
/// under `flannel.alpha.coreos.com/`).
pub const ANN_PUBLIC_IP: &str = "capstan.io/public-ip";
pub const ANN_BACKEND_TYPE: &str = "capstan.io/backend-type";
pub const ANN_BACKEND_DATA: &str = "capstan.io/backend-data";
/// Dual stack: the VTEP that carries IPv6 (flannel's `backend-v6-data`).
pub const ANN_BACKEND_V6_DATA: &str = "capstan.io/backend-v6-data";

/// A resourceVersion as the overlay's revision. Kubernetes calls it opaque;
/// both kube-apiserver and capstan-control use etcd revisions, so it parses.
pub(super) fn revision(rv: Option<&str>) -> i64 {
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

pub(super) fn published(node: &Node, attrs: &LeaseAttrs) -> bool {
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
pub(super) fn attrs_for_node(
    cfg: &NetworkConfig,
    attrs: &LeaseAttrs,
    node: &Node,
    name: &str,
) -> LeaseAttrs {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subnet::kube::fixtures::node;

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
    fn pod_cidrs_win_and_host_bits_are_dropped() {
        let mut n = node("n", Some("10.244.1.0/24"), &[]);
        if let Some(s) = n.spec.as_mut() {
            s.pod_cidrs = Some(vec!["fd00::/64".into(), "10.244.7.5/24".into()]);
        }
        assert_eq!(node_subnet(&n), Some("10.244.7.0/24".parse().unwrap()));
    }
}
