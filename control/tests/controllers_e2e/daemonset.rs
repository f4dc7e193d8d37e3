//! DaemonSets follow the nodes (one pod per node, one more when a node
//! joins, one less when it leaves) and roll: `kubectl rollout restart`
//! replaces every pod within maxUnavailable, or with maxSurge a new pod
//! first, and `kubectl rollout status` returns once it is done.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use capstan_lab::wait::wait_for;
use k8s_openapi::api::core::v1::Pod;
use libtest_mimic::Failed;

use crate::deployment::Sampler;
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

fn daemonset_manifest(ns: &str, name: &str, strategy: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  selector:\n    matchLabels:\n      app: {name}\n{strategy}  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n      - name: c\n        image: capstan.local/busybox:latest\n"
    )
}

/// The live (not deleting) pods of `app=name`: their names and nodes.
fn live_pods(s: &Suite, ns: &str, name: &str) -> Vec<(String, String)> {
    pods(s, ns, &format!("app={name}"))
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            (
                p.metadata.name.clone().unwrap_or_default(),
                p.spec
                    .as_ref()
                    .and_then(|x| x.node_name.clone())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

fn ds_rollout_status(s: &Suite, ns: &str, name: &str) -> Result<String, Failed> {
    let ds = format!("ds/{name}");
    kubectl(
        s,
        &["-n", ns, "rollout", "status", &ds, "--timeout=120s"],
        None,
    )
}

/// Restarts the DaemonSet and waits for `kubectl rollout status`: every
/// pod replaced, one per node, the status counting them; `min_ready` is
/// the fewest ready pods seen while it ran.
fn restart_and_wait(s: &Suite, ns: &str, name: &str) -> Result<usize, Failed> {
    let before: HashSet<String> = live_pods(s, ns, name).into_iter().map(|p| p.0).collect();
    if before.len() != 3 {
        return Err(format!("before the restart: {before:?}").into());
    }
    let min_ready = Arc::new(AtomicUsize::new(usize::MAX));
    let sampler = {
        let min_ready = min_ready.clone();
        Sampler::start(s, ns, &format!("app={name}"), move |pods| {
            let n = pods.iter().filter(|p| ready(p)).count();
            min_ready.fetch_min(n, SeqCst);
        })
    };
    let ds = format!("ds/{name}");
    kubectl(s, &["-n", ns, "rollout", "restart", &ds], None)?;
    let status = ds_rollout_status(s, ns, name);
    sampler.stop(s);
    let out = status?;
    if !out.contains("successfully rolled out") {
        return Err(format!("rollout status said: {out}").into());
    }
    // Done means done: the pods rollout status saw are the new ones.
    let after = live_pods(s, ns, name);
    let nodes: HashSet<&str> = after.iter().map(|p| p.1.as_str()).collect();
    if after.len() != 3 || nodes.len() != 3 || after.iter().any(|p| before.contains(&p.0)) {
        return Err(format!("after the rollout: {after:?}, before: {before:?}").into());
    }
    let status = jsonpath(
        s,
        &["-n", ns, "get", "ds", name],
        "{.status.desiredNumberScheduled} {.status.currentNumberScheduled} {.status.updatedNumberScheduled} {.status.numberReady} {.status.numberAvailable} {.status.numberMisscheduled}",
    );
    if status != "3 3 3 3 3 0" {
        return Err(format!("status after the rollout: {status}").into());
    }
    let generation = jsonpath(
        s,
        &["-n", ns, "get", "ds", name],
        "{.metadata.generation} {.status.observedGeneration}",
    );
    if generation != "2 2" {
        return Err(format!("generation/observedGeneration: {generation}").into());
    }
    Ok(min_ready.load(SeqCst))
}

pub fn daemonset_rollout_restart_replaces_every_pod(s: &Suite) -> Result<(), Failed> {
    let ns = "ds-restart";
    namespace(s, ns)?;
    kubectl(
        s,
        &["create", "-f", "-"],
        Some(&daemonset_manifest(ns, "roll", "")),
    )?;
    ds_rollout_status(s, ns, "roll")?;
    let strategy = jsonpath(
        s,
        &["-n", ns, "get", "ds", "roll"],
        "{.spec.updateStrategy.type} {.spec.updateStrategy.rollingUpdate.maxUnavailable} {.spec.updateStrategy.rollingUpdate.maxSurge}",
    );
    if strategy != "RollingUpdate 1 0" {
        return Err(format!("default update strategy: {strategy}").into());
    }
    let min_ready = restart_and_wait(s, ns, "roll")?;
    // maxUnavailable 1: never more than one node without a ready pod.
    if min_ready < 2 {
        return Err(format!("ready pods dropped to {min_ready} with maxUnavailable=1").into());
    }
    kubectl(s, &["delete", "namespace", ns, "--wait=false"], None)?;
    Ok(())
}

pub fn daemonset_max_surge_keeps_every_node_served(s: &Suite) -> Result<(), Failed> {
    let ns = "ds-surge";
    namespace(s, ns)?;
    let strategy = "  updateStrategy:\n    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 1\n      maxUnavailable: 0\n";
    kubectl(
        s,
        &["create", "-f", "-"],
        Some(&daemonset_manifest(ns, "surge", strategy)),
    )?;
    ds_rollout_status(s, ns, "surge")?;
    let most = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let most = most.clone();
        Sampler::start(s, ns, "app=surge", move |pods| {
            let live = pods
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .count();
            most.fetch_max(live, SeqCst);
        })
    };
    let min_ready = restart_and_wait(s, ns, "surge");
    sampler.stop(s);
    let min_ready = min_ready?;
    if min_ready < 3 {
        return Err(format!("ready pods dropped to {min_ready} during a maxSurge rollout").into());
    }
    // The surge pod: never more than one node with two pods.
    let most = most.load(SeqCst);
    if most > 4 {
        return Err(format!("{most} live pods at once with maxSurge=1 on 3 nodes").into());
    }
    // Both non-zero is refused, as Kubernetes does.
    let err = kubectl_err(
        s,
        &[
            "-n",
            ns,
            "patch",
            "ds",
            "surge",
            "--type=merge",
            "-p",
            r#"{"spec":{"updateStrategy":{"rollingUpdate":{"maxUnavailable":1}}}}"#,
        ],
        None,
    )?;
    if !err.contains("may not be set when maxUnavailable is non-zero") {
        return Err(format!("surge and unavailable both set: {err}").into());
    }
    kubectl(s, &["delete", "namespace", ns, "--wait=false"], None)?;
    Ok(())
}
