//! Node lifecycle: a node that stops renewing goes Unknown, is tainted
//! unreachable and loses its pods; back again, it is Ready and untainted.

use std::time::Duration;

use capstan_lab::wait::wait_for;
use libtest_mimic::Failed;

use crate::fixture::*;
use crate::objects::*;

pub fn silent_node_goes_unknown_and_pods_move(s: &Suite) -> Result<(), Failed> {
    let ns = "evict";
    namespace(s, ns)?;
    let extra = "";
    let mut d = deployment(ns, "mover", 3, "capstan.local/busybox:latest", extra);
    d.push_str("      tolerations:\n      - key: node.kubernetes.io/unreachable\n        operator: Exists\n        effect: NoExecute\n        tolerationSeconds: 2\n");
    kubectl(s, &["create", "-f", "-"], Some(&d))?;
    wait_for("3 ready", Duration::from_secs(30), || {
        (pods(s, ns, "app=mover").iter().filter(|p| ready(p)).count() == 3).then_some(())
    })?;
    let victim_node = pods(s, ns, "app=mover")
        .iter()
        .find_map(|p| p.spec.as_ref().and_then(|x| x.node_name.clone()))
        .ok_or("no bound pod")?;
    s.sim.stop(&victim_node);
    wait_for("the silent node Unknown", Duration::from_secs(30), || {
        (jsonpath(
            s,
            &["get", "node", &victim_node],
            "{.status.conditions[?(@.type==\"Ready\")].status}",
        ) == "Unknown")
            .then_some(())
    })?;
    let taints = jsonpath(s, &["get", "node", &victim_node], "{.spec.taints[*].key}");
    if !taints.contains("node.kubernetes.io/unreachable") {
        return Err(format!("taints on the silent node: {taints}").into());
    }
    wait_for(
        "3 ready pods, none on the silent node",
        Duration::from_secs(60),
        || {
            let p = pods(s, ns, "app=mover");
            let ok = p.iter().filter(|p| ready(p)).count() == 3
                && p.iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .all(|p| {
                        p.spec.as_ref().and_then(|x| x.node_name.as_deref())
                            != Some(victim_node.as_str())
                    });
            ok.then_some(())
        },
    )?;
    // The node comes back: it loses the taint and is Ready again.
    s.add_node(&victim_node, &[("zone", "one")])?;
    wait_for(
        "the node Ready without the taint",
        Duration::from_secs(30),
        || {
            let ready = jsonpath(
                s,
                &["get", "node", &victim_node],
                "{.status.conditions[?(@.type==\"Ready\")].status}",
            );
            let taints = jsonpath(s, &["get", "node", &victim_node], "{.spec.taints[*].key}");
            (ready == "True" && !taints.contains("unreachable")).then_some(())
        },
    )?;
    Ok(())
}
