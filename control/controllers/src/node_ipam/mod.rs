//! Node IPAM (kube-controller-manager's `--allocate-node-cidrs`): every
//! node without pod CIDRs gets one per cluster family (`--cluster-cidr`,
//! single- or dual-stack), written as `spec.podCIDRs` with `spec.podCIDR`
//! the first. The agent's kube subnet manager and the CNI plugin then use
//! them.
//!
//! Level-triggered: each pass reconciles the allocator with the nodes the
//! informer holds, so after a restart the first pass rebuilds every
//! allocation from the nodes, and a deleted node's CIDRs are free on the
//! next pass. A node's CIDRs, once set, are never changed (Kubernetes
//! treats them as immutable): a node with CIDRs of only some families is
//! left as it is, and said once in the log.

pub mod cidr_set;
pub mod config;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ipnetwork::IpNetwork;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};

use cidr_set::CidrSet;
pub use config::{ClusterCidrs, ConfigError, MaskFlags};

/// What a node holds in the allocator.
#[derive(Debug)]
struct Record {
    uid: Option<String>,
    /// The node's pod CIDRs as last seen, or as assigned while pending.
    spec: Vec<String>,
    /// (set index, CIDR) occupied on the node's behalf.
    held: Vec<(usize, IpNetwork)>,
    /// Assigned by us, not yet seen on the node in the informer.
    pending: bool,
}

/// CIDRs to write on a node. The patch carries the resourceVersion the
/// plan saw, so a node that changed meanwhile (maybe given CIDRs by
/// someone else) is never overwritten: the patch fails and the next pass
/// looks again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub node: String,
    pub resource_version: Option<String>,
    pub cidrs: Vec<IpNetwork>,
}

#[derive(Debug)]
pub struct NodeIpam {
    sets: Vec<CidrSet>,
    records: HashMap<String, Record>,
    /// (node, what) said once already.
    logged: HashSet<(String, &'static str)>,
}

fn spec_cidrs(node: &Node) -> Vec<String> {
    let Some(spec) = node.spec.as_ref() else {
        return Vec::new();
    };
    match (&spec.pod_cidrs, &spec.pod_cidr) {
        (Some(list), _) if !list.is_empty() => list.clone(),
        (_, Some(one)) if !one.is_empty() => vec![one.clone()],
        _ => Vec::new(),
    }
}

impl NodeIpam {
    pub fn new(config: &ClusterCidrs) -> Self {
        NodeIpam {
            sets: config.pools().iter().map(|p| CidrSet::new(*p)).collect(),
            records: HashMap::new(),
            logged: HashSet::new(),
        }
    }

    fn once(&mut self, node: &str, what: &'static str) -> bool {
        self.logged.insert((node.to_string(), what))
    }

    fn forget(&mut self, name: &str) {
        if let Some(r) = self.records.remove(name) {
            for (i, c) in r.held {
                if let Some(s) = self.sets.get_mut(i) {
                    s.release(&c);
                }
            }
        }
    }

    /// Takes what a node already has (or drops what it had when its CIDRs
    /// changed, which only someone else can do).
    fn observe(&mut self, name: &str, node: &Node, spec: Vec<String>) {
        self.forget(name);
        let mut held = Vec::new();
        let mut families = HashSet::new();
        for text in &spec {
            let Ok(cidr) = text.parse::<IpNetwork>() else {
                if self.once(name, "unparsable") {
                    tracing::warn!(node = name, cidr = %text, "node has a pod CIDR that is not a CIDR; ignored");
                }
                continue;
            };
            families.insert(cidr.is_ipv4());
            let Some(i) = self.sets.iter().position(|s| s.same_family(&cidr)) else {
                continue;
            };
            match self.sets[i].occupy(&cidr) {
                Ok(()) => held.push((i, cidr)),
                Err(e) => {
                    if self.once(name, "outside") {
                        tracing::warn!(node = name, error = %e, "node's pod CIDR not tracked");
                    }
                }
            }
        }
        let missing: Vec<String> = self
            .sets
            .iter()
            .map(|s| s.pool().cluster)
            .filter(|c| !families.contains(&c.is_ipv4()))
            .map(|c| c.to_string())
            .collect();
        if !missing.is_empty() && self.once(name, "partial") {
            tracing::warn!(
                node = name,
                pod_cidrs = ?spec,
                ?missing,
                "node keeps the pod CIDRs it has (they are immutable) and gets none from the missing cluster CIDRs"
            );
        }
        self.records.insert(
            name.to_string(),
            Record {
                uid: node.metadata.uid.clone(),
                spec,
                held,
                pending: false,
            },
        );
    }

    /// One CIDR per family for `name`, or None (nothing kept) when a
    /// family is exhausted.
    fn allocate(&mut self, name: &str, node: &Node) -> Option<Vec<IpNetwork>> {
        let mut held = Vec::new();
        for i in 0..self.sets.len() {
            match self.sets[i].allocate() {
                Some(c) => held.push((i, c)),
                None => {
                    for (j, c) in &held {
                        self.sets[*j].release(c);
                    }
                    if self.once(name, "exhausted") {
                        tracing::warn!(node = name, cluster = %self.sets[i].pool().cluster, "cluster CIDR exhausted; node left without pod CIDRs");
                    }
                    return None;
                }
            }
        }
        let cidrs: Vec<IpNetwork> = held.iter().map(|(_, c)| *c).collect();
        self.records.insert(
            name.to_string(),
            Record {
                uid: node.metadata.uid.clone(),
                spec: cidrs.iter().map(ToString::to_string).collect(),
                held,
                pending: true,
            },
        );
        Some(cidrs)
    }

    /// Reconciles with `nodes` and returns the CIDRs to write, in node
    /// name order: existing CIDRs are taken first, so a new node never
    /// gets one that a node later in the list already has.
    pub fn plan(&mut self, nodes: &[Arc<Node>]) -> Vec<Assignment> {
        let mut by_name: Vec<(&str, &Node)> = nodes
            .iter()
            .filter_map(|n| Some((n.metadata.name.as_deref()?, n.as_ref())))
            .collect();
        by_name.sort_by_key(|(name, _)| *name);
        let uids: HashMap<&str, &Option<String>> = by_name
            .iter()
            .map(|(n, node)| (*n, &node.metadata.uid))
            .collect();
        // Deleted nodes, and names now carried by another node: released.
        let gone: Vec<String> = self
            .records
            .iter()
            .filter(|(name, r)| uids.get(name.as_str()).is_none_or(|uid| **uid != r.uid))
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            self.forget(&name);
            self.logged.retain(|(n, _)| *n != name);
        }
        let mut wanting = Vec::new();
        for (name, node) in &by_name {
            let spec = spec_cidrs(node);
            let record = self.records.get(*name);
            if spec.is_empty() {
                // Assigned and waiting for the informer to show it: nothing
                // new to do (a second assignment would be a second CIDR).
                if !record.is_some_and(|r| r.pending) {
                    wanting.push((*name, *node));
                }
                continue;
            }
            if record.is_some_and(|r| r.spec == spec) {
                if let Some(r) = self.records.get_mut(*name) {
                    r.pending = false;
                }
                continue;
            }
            self.observe(name, node, spec);
        }
        let mut out = Vec::new();
        for (name, node) in wanting {
            // Someone else's CIDRs vanished (not ours to keep): start over.
            self.forget(name);
            match self.allocate(name, node) {
                Some(cidrs) => out.push(Assignment {
                    node: name.to_string(),
                    resource_version: node.metadata.resource_version.clone(),
                    cidrs,
                }),
                // Exhausted: later nodes would be too.
                None => break,
            }
        }
        out
    }

    /// A write that failed: the CIDRs go back, the next pass tries again.
    pub fn failed(&mut self, node: &str) {
        if self.records.get(node).is_some_and(|r| r.pending) {
            self.forget(node);
        }
    }
}

/// Writes the assignments; returns the nodes whose write failed.
pub async fn apply(client: &kube::Client, todo: &[Assignment]) -> Vec<String> {
    let api: Api<Node> = Api::all(client.clone());
    let mut failed = Vec::new();
    for a in todo {
        let cidrs: Vec<String> = a.cidrs.iter().map(ToString::to_string).collect();
        let mut patch = serde_json::json!({"spec": {"podCIDR": cidrs.first(), "podCIDRs": cidrs}});
        if let Some(rv) = &a.resource_version {
            patch["metadata"] = serde_json::json!({"resourceVersion": rv});
        }
        match api
            .patch(&a.node, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => tracing::info!(node = %a.node, pod_cidrs = ?cidrs, "allocated pod CIDRs"),
            Err(e) => {
                tracing::info!(node = %a.node, error = %e, "allocating pod CIDRs failed; retrying");
                failed.push(a.node.clone());
            }
        }
    }
    failed
}

#[cfg(test)]
mod tests;
