//! Node IPAM against small node sets: assignment, reuse after restart,
//! dual-stack pairs, and names deleted and created again.

use super::*;
use k8s_openapi::api::core::v1::NodeSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn node(name: &str, cidrs: &[&str]) -> Arc<Node> {
    Arc::new(Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            resource_version: Some("7".into()),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: cidrs.first().map(|c| c.to_string()),
            pod_cidrs: (!cidrs.is_empty()).then(|| cidrs.iter().map(|c| c.to_string()).collect()),
            ..Default::default()
        }),
        status: None,
    })
}

/// `node` as the informer shows it once an assignment was written.
fn written(a: &Assignment) -> Arc<Node> {
    let cidrs: Vec<String> = a.cidrs.iter().map(ToString::to_string).collect();
    let refs: Vec<&str> = cidrs.iter().map(String::as_str).collect();
    node(&a.node, &refs)
}

fn ipam(cluster: &str) -> NodeIpam {
    let cidrs = config::parse_cluster_cidrs(cluster).unwrap();
    NodeIpam::new(&ClusterCidrs::new(&cidrs, MaskFlags::default()).unwrap())
}

fn plain(plan: &[Assignment]) -> Vec<(String, Vec<String>)> {
    plan.iter()
        .map(|a| {
            (
                a.node.clone(),
                a.cidrs.iter().map(ToString::to_string).collect(),
            )
        })
        .collect()
}

fn pair(n: &str, cidrs: &[&str]) -> (String, Vec<String>) {
    (n.to_string(), cidrs.iter().map(|c| c.to_string()).collect())
}

#[test]
fn free_subnets_in_order_around_taken_ones() {
    let mut ipam = ipam("10.244.0.0/16");
    let nodes = [
        node("b", &[]),
        node("a", &["10.244.0.0/24"]),
        node("c", &[]),
    ];
    assert_eq!(
        plain(&ipam.plan(&nodes)),
        vec![pair("b", &["10.244.1.0/24"]), pair("c", &["10.244.2.0/24"])]
    );
}

#[test]
fn a_node_later_in_name_order_keeps_its_cidr() {
    // "z" holds the lowest CIDR: "a" must not get it although it comes first.
    let mut ipam = ipam("10.244.0.0/16");
    let nodes = [node("a", &[]), node("z", &["10.244.0.0/24"])];
    assert_eq!(
        plain(&ipam.plan(&nodes)),
        vec![pair("a", &["10.244.1.0/24"])]
    );
}

#[test]
fn dual_stack_gives_both_families_first_family_first() {
    let mut ipam = ipam("10.244.0.0/16,fd00:10:244::/56");
    let nodes = [node("a", &[]), node("b", &[])];
    let plan = ipam.plan(&nodes);
    assert_eq!(
        plain(&plan),
        vec![
            pair("a", &["10.244.0.0/24", "fd00:10:244::/64"]),
            pair("b", &["10.244.1.0/24", "fd00:10:244:1::/64"])
        ]
    );
    assert_eq!(plan[0].resource_version.as_deref(), Some("7"));
    let mut v6first = ipam_v6_first();
    assert_eq!(
        plain(&v6first.plan(&[node("a", &[])])),
        vec![pair("a", &["fd00::/64", "10.0.0.0/24"])]
    );
}

fn ipam_v6_first() -> NodeIpam {
    ipam("fd00::/48,10.0.0.0/8")
}

#[test]
fn pending_assignments_are_not_repeated_and_settle() {
    let mut ipam = ipam("10.244.0.0/16,fd00:10:244::/56");
    let plan = ipam.plan(&[node("a", &[])]);
    assert_eq!(plan.len(), 1);
    // The informer has not seen the write yet: no second assignment, and
    // a new node does not get a's CIDRs.
    assert_eq!(
        plain(&ipam.plan(&[node("a", &[]), node("b", &[])])),
        vec![pair("b", &["10.244.1.0/24", "fd00:10:244:1::/64"])]
    );
    // Once seen, nothing more to do.
    assert!(ipam.plan(&[written(&plan[0]), node("b", &[])]).is_empty());
}

#[test]
fn a_failed_write_is_retried_with_the_same_cidrs() {
    let mut ipam = ipam("10.244.0.0/16");
    let first = ipam.plan(&[node("a", &[])]);
    ipam.failed("a");
    assert_eq!(ipam.plan(&[node("a", &[])]), first);
}

#[test]
fn exhaustion_leaves_the_rest_waiting_until_a_node_goes() {
    let mut ipam = ipam("10.244.0.0/23,fd00::/63");
    let nodes = vec![node("a", &[]), node("b", &[]), node("c", &[])];
    let plan = ipam.plan(&nodes);
    assert_eq!(plan.len(), 2);
    let mut seen: Vec<Arc<Node>> = plan.iter().map(written).collect();
    seen.push(node("c", &[]));
    assert!(ipam.plan(&seen).is_empty());
    // Reuse after release: a deleted, its CIDRs go to c.
    seen.remove(0);
    assert_eq!(
        plain(&ipam.plan(&seen)),
        vec![pair("c", &["10.244.0.0/24", "fd00::/64"])]
    );
}

#[test]
fn one_family_exhausted_takes_nothing_from_the_other() {
    // Two IPv4 slots, one IPv6 slot.
    let mut ipam = ipam("10.244.0.0/23,fd00::/64");
    let plan = ipam.plan(&[node("a", &[]), node("b", &[])]);
    assert_eq!(plan.len(), 1);
    let mut seen = vec![written(&plan[0]), node("b", &[])];
    assert!(ipam.plan(&seen).is_empty());
    // a goes: b (first by name) gets both families, c waits.
    seen = vec![node("b", &[]), node("c", &[])];
    let plan = ipam.plan(&seen);
    assert_eq!(
        plain(&plan),
        vec![pair("b", &["10.244.0.0/24", "fd00::/64"])]
    );
}

#[test]
fn rebuilt_from_existing_nodes_after_a_restart() {
    let nodes = vec![
        node("a", &["10.244.0.0/24", "fd00:10:244::/64"]),
        node("b", &["10.244.2.0/24", "fd00:10:244:1::/64"]),
        node("c", &[]),
    ];
    // A fresh allocator (a restarted capstan-control) takes what the
    // nodes have and hands out the first CIDRs nobody holds.
    let mut ipam = ipam("10.244.0.0/16,fd00:10:244::/56");
    assert_eq!(
        plain(&ipam.plan(&nodes)),
        vec![pair("c", &["10.244.1.0/24", "fd00:10:244:2::/64"])]
    );
}

#[test]
fn a_node_with_only_ipv4_in_a_dual_stack_cluster_is_left_alone() {
    let mut ipam = ipam("10.244.0.0/16,fd00:10:244::/56");
    let nodes = vec![node("old", &["10.244.0.0/24"]), node("new", &[])];
    assert_eq!(
        plain(&ipam.plan(&nodes)),
        vec![pair("new", &["10.244.1.0/24", "fd00:10:244::/64"])]
    );
    assert!(ipam.logged.contains(&("old".to_string(), "partial")));
    // Said once: the next passes plan nothing and log nothing new.
    let seen = vec![
        nodes[0].clone(),
        node("new", &["10.244.1.0/24", "fd00:10:244::/64"]),
    ];
    assert!(ipam.plan(&seen).is_empty());
    assert!(ipam.plan(&seen).is_empty());
    assert_eq!(ipam.logged.len(), 1);
    // Deleting it frees its IPv4 CIDR and forgets the message.
    let plan = ipam.plan(&[seen[1].clone(), node("next", &[])]);
    assert_eq!(
        plain(&plan),
        vec![pair("next", &["10.244.0.0/24", "fd00:10:244:1::/64"])]
    );
    assert!(ipam.logged.is_empty());
}

#[test]
fn a_recreated_node_gets_fresh_cidrs() {
    let mut ipam = ipam("10.244.0.0/16");
    let plan = ipam.plan(&[node("a", &[])]);
    assert_eq!(plan.len(), 1);
    // Deleted and created again under the same name before the informer
    // showed the write: the old assignment is released, a new one made.
    let mut again = (*node("a", &[])).clone();
    again.metadata.uid = Some("uid-a-2".into());
    let plan2 = ipam.plan(&[Arc::new(again)]);
    assert_eq!(plain(&plan2), vec![pair("a", &["10.244.0.0/24"])]);
}

#[test]
fn foreign_cidrs_are_respected() {
    let mut ipam = ipam("10.244.0.0/16");
    // Outside the cluster CIDR: left alone, takes nothing from the pool.
    let nodes = vec![node("x", &["192.168.0.0/24"]), node("y", &[])];
    assert_eq!(
        plain(&ipam.plan(&nodes)),
        vec![pair("y", &["10.244.0.0/24"])]
    );
    // Someone else wrote other CIDRs on y before our write showed: theirs
    // count, ours go back to the pool.
    let nodes = vec![node("y", &["10.244.7.0/24"]), node("z", &[])];
    assert_eq!(
        plain(&ipam.plan(&nodes)),
        vec![pair("z", &["10.244.0.0/24"])]
    );
}
