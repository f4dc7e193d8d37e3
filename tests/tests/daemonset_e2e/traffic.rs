//! Pod traffic through the network the DaemonSet installed: the seed
//! NodePort from outside the nodes; an established TCP connection between
//! pods on different nodes that survives `kubectl rollout restart` of the
//! agents; pods that stay reachable once the DaemonSet is deleted.

use std::time::Duration;

use libtest_mimic::Failed;

use crate::suite::*;
use crate::support::*;

const POD_START: Duration = Duration::from_secs(90);

/// The demo's pods once both are Ready, each inside its node's podCIDR.
fn demo_pods(s: &Suite) -> Result<Vec<serde_json::Value>, Failed> {
    s.wait_for("two ready demo pods", POD_START, || {
        let pods = s.get(&["pods", "-l", "app=demo"])?["items"]
            .as_array()?
            .clone();
        (pods.len() == 2 && pods.iter().all(is_ready)).then_some(pods)
    })
}

/// Every node's NodePort answers from outside with a demo pod's name.
pub fn node_port_answers(s: &Suite) -> Result<(), Failed> {
    let names: Vec<String> = demo_pods(s)?.iter().map(name).collect();
    for node in s.lab.nodes() {
        let url = format!("http://{}:{DEMO_PORT}/", node.ip());
        let body = s.wait_for(&format!("{url} to answer"), POD_START, || {
            s.outside("curl", &["-sf", "--max-time", "3", &url]).ok()
        })?;
        if !names.contains(&body.trim().to_string()) {
            return Err(format!("{url} answered {body:?}, not a demo pod ({names:?})").into());
        }
    }
    Ok(())
}

pub fn seed_example_answers_from_outside(s: &Suite) -> Result<(), Failed> {
    s.kubectl(&["apply", "-f", "-"], Some(&demo_yaml()))?;
    for p in demo_pods(s)? {
        let node = s.get(&["node", &node_of(&p)]).unwrap_or_default();
        let cidr = node["spec"]["podCIDR"].as_str().unwrap_or_default();
        let ip = pod_ip(&p).ok_or_else(|| format!("pod {} has no IP", name(&p)))?;
        if !in_cidr(ip, cidr) {
            return Err(format!("pod {} has {ip}, outside its node's {cidr}", name(&p)).into());
        }
    }
    node_port_answers(s)
}

fn client_log(s: &Suite) -> String {
    s.kubectl(&["logs", "echo-client"], None)
        .unwrap_or_default()
}

/// The echo pair: server on the first node, client on the second.
fn start_echo_pair(s: &Suite) -> Result<(), Failed> {
    let (a, b) = (s.lab.node(0), s.lab.node(1));
    s.kubectl(
        &["apply", "-f", "-"],
        Some(&web_pod("echo-server", a.name())),
    )?;
    let server = s.wait_for("echo-server ready", POD_START, || {
        let p = s.get(&["pod", "echo-server"])?;
        is_ready(&p).then(|| pod_ip(&p)).flatten()
    })?;
    s.kubectl(
        &["apply", "-f", "-"],
        Some(&echo_client_pod("echo-client", b.name(), server)),
    )?;
    s.wait_for("echoes over the connection", POD_START, || {
        (echoed(&client_log(s)).len() >= 2).then_some(())
    })?;
    Ok(())
}

/// The connection is the same one, unbroken: numbers 1..=n in order, no
/// "connection ended", and it is still moving after `before` lines.
fn still_flowing(s: &Suite, before: usize, what: &str) -> Result<(), Failed> {
    let log = s.wait_for(&format!("echoes after {what}"), POD_START, || {
        let log = client_log(s);
        (echoed(&log).len() >= before + 4 || log.contains("connection ended")).then_some(log)
    })?;
    let seq = echoed(&log);
    if log.contains("connection ended") || seq.iter().copied().ne(1..=seq.len() as u64) {
        return Err(format!("the connection broke across {what}:\n{log}").into());
    }
    eprintln!(
        "one connection across {what}: {before} echoes before, {} in all, none lost",
        seq.len()
    );
    Ok(())
}

pub fn rollout_restart_keeps_connections(s: &Suite) -> Result<(), Failed> {
    start_echo_pair(s)?;
    let before = echoed(&client_log(s)).len();
    let old: Vec<String> = s.agent_pods().iter().map(name).collect();
    s.kubectl(&["-n", NAMESPACE, "rollout", "restart", "ds/capstan"], None)?;
    s.rollout()?;
    let now: Vec<String> = s.agent_pods().iter().map(name).collect();
    if now.iter().any(|p| old.contains(p)) {
        return Err(format!("rollout kept old agent pods: {old:?} -> {now:?}").into());
    }
    still_flowing(s, before, "the agents' rollout restart")
}

pub fn deleting_the_daemonset_leaves_pods_reachable(s: &Suite) -> Result<(), Failed> {
    let before = echoed(&client_log(s)).len();
    s.kubectl(
        &[
            "-n",
            NAMESPACE,
            "delete",
            "daemonset",
            "capstan",
            "--wait=true",
        ],
        None,
    )?;
    s.wait_for("every agent pod gone", ROLLOUT, || {
        s.agent_pods().is_empty().then_some(())
    })?;
    node_port_answers(s)?;
    still_flowing(s, before, "deleting the DaemonSet")
}
