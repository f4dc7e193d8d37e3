//! Node IPAM (kube-controller-manager's `--allocate-node-cidrs`): every
//! node without `spec.podCIDR` gets the first free subnet of the cluster
//! CIDR. The agent's kube subnet manager and the CNI plugin then use it.
//! A pod CIDR, once set, is never changed or taken back from a live node.

use std::collections::BTreeSet;
use std::sync::Arc;

use ipnetwork::Ipv4Network;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};

fn assigned(node: &Node) -> Option<Ipv4Network> {
    let spec = node.spec.as_ref()?;
    spec.pod_cidrs
        .iter()
        .flatten()
        .chain(spec.pod_cidr.iter())
        .find_map(|c| c.parse::<Ipv4Network>().ok())
}

/// (node, CIDR) for every node that needs one, in name order.
pub fn plan(nodes: &[Arc<Node>], cluster: Ipv4Network, mask: u8) -> Vec<(String, Ipv4Network)> {
    if mask < cluster.prefix() || mask > 32 {
        return Vec::new();
    }
    let mut used: BTreeSet<u32> = nodes
        .iter()
        .filter_map(|n| assigned(n))
        .map(|c| u32::from(c.network()))
        .collect();
    let mut wanting: Vec<&Arc<Node>> = nodes.iter().filter(|n| assigned(n).is_none()).collect();
    wanting.sort_by_key(|n| n.metadata.name.clone());
    let step: u64 = 1u64 << (32 - mask);
    let count: u64 = 1u64 << (mask - cluster.prefix());
    let base = u64::from(u32::from(cluster.network()));
    let mut out = Vec::new();
    let mut i: u64 = 0;
    for n in wanting {
        while i < count && used.contains(&((base + i * step) as u32)) {
            i += 1;
        }
        if i >= count {
            tracing::warn!(node = ?n.metadata.name, %cluster, mask, "cluster CIDR exhausted; node left without a pod CIDR");
            break;
        }
        let net = (base + i * step) as u32;
        used.insert(net);
        if let Ok(c) = Ipv4Network::new(net.into(), mask) {
            out.push((n.metadata.name.clone().unwrap_or_default(), c));
        }
    }
    out
}

pub async fn apply(client: &kube::Client, todo: &[(String, Ipv4Network)]) -> usize {
    let api: Api<Node> = Api::all(client.clone());
    let mut failed = 0;
    for (name, cidr) in todo {
        let patch = serde_json::json!({"spec": {"podCIDR": cidr.to_string(), "podCIDRs": [cidr.to_string()]}});
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => tracing::info!(node = %name, %cidr, "allocated pod CIDR"),
            Err(e) => {
                tracing::info!(node = %name, error = %e, "allocating pod CIDR failed");
                failed += 1;
            }
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NodeSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node(name: &str, cidr: Option<&str>) -> Arc<Node> {
        Arc::new(Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                pod_cidr: cidr.map(String::from),
                ..Default::default()
            }),
            status: None,
        })
    }

    #[test]
    fn free_subnets_in_order_around_taken_ones() {
        let nodes = [
            node("b", None),
            node("a", Some("10.244.0.0/24")),
            node("c", None),
        ];
        let p = plan(&nodes, "10.244.0.0/16".parse().unwrap(), 24);
        assert_eq!(
            p,
            vec![
                ("b".to_string(), "10.244.1.0/24".parse().unwrap()),
                ("c".to_string(), "10.244.2.0/24".parse().unwrap())
            ]
        );
    }

    #[test]
    fn exhaustion_leaves_the_rest_waiting() {
        let nodes = [node("a", None), node("b", None), node("c", None)];
        let p = plan(&nodes, "10.244.0.0/23".parse().unwrap(), 24);
        assert_eq!(p.len(), 2);
    }
}
