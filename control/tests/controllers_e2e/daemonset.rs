//! DaemonSets follow the nodes: one pod per node, one more when a node
//! joins, one less when it leaves.

use std::collections::HashSet;
use std::time::Duration;

use capstan_lab::wait::wait_for;
use k8s_openapi::api::core::v1::Pod;
use libtest_mimic::Failed;

use crate::fixture::*;
use crate::objects::*;

pub fn daemonset_follows_nodes(s: &Suite) -> Result<(), Failed> {
    let ns = "ds";
    namespace(s, ns)?;
    let ds = format!(
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: agent\n  namespace: {ns}\nspec:\n  selector:\n    matchLabels:\n      app: agent\n  template:\n    metadata:\n      labels:\n        app: agent\n    spec:\n      containers:\n      - name: c\n        image: capstan.local/busybox:latest\n"
    );
    kubectl(s, &["create", "-f", "-"], Some(&ds))?;
    let on_nodes = |want: usize| {
        move || {
            let p: Vec<Pod> = pods(s, ns, "app=agent")
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            let nodes: HashSet<String> = p
                .iter()
                .filter_map(|p| p.spec.as_ref().and_then(|x| x.node_name.clone()))
                .collect();
            (p.len() == want && nodes.len() == want).then_some(())
        }
    };
    wait_for(
        "one daemon pod on each of 3 nodes",
        Duration::from_secs(30),
        on_nodes(3),
    )?;
    s.add_node("sim-d", &[("zone", "two")])?;
    wait_for(
        "a daemon pod on the new node",
        Duration::from_secs(30),
        on_nodes(4),
    )?;
    s.remove_node("sim-d")?;
    wait_for(
        "the daemon pod gone with its node",
        Duration::from_secs(30),
        on_nodes(3),
    )?;
    kubectl(s, &["-n", ns, "delete", "daemonset", "agent"], None)?;
    Ok(())
}
