//! A malformed network config in the ConfigMap: the restarted agent pod
//! fails with one clear log line, and the node's network stays as it was
//! (pods keep answering). The good config is put back afterwards.

use libtest_mimic::Failed;

use crate::suite::*;
use crate::support::*;
use crate::traffic::node_port_answers;

const BROKEN: &str = r#"{"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan""#;

/// The newest agent pod whose agent container has failed at least once.
fn failed_agent(s: &Suite, old: &[String]) -> Option<serde_json::Value> {
    s.agent_pods().into_iter().find(|p| {
        !old.contains(&name(p))
            && p["status"]["containerStatuses"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| {
                    c["name"] == "agent"
                        && (c["restartCount"].as_u64().unwrap_or(0) > 0
                            || c["state"]["terminated"]["exitCode"].as_i64().unwrap_or(0) != 0)
                })
    })
}

pub fn malformed_net_conf_fails_with_one_line_and_leaves_the_network(
    s: &Suite,
) -> Result<(), Failed> {
    let patch = serde_json::json!({"data": {"net-conf.json": BROKEN}}).to_string();
    let old: Vec<String> = s.agent_pods().iter().map(name).collect();
    s.kubectl(
        &[
            "-n",
            NAMESPACE,
            "patch",
            "configmap",
            "capstan-config",
            "--type=merge",
            "-p",
            &patch,
        ],
        None,
    )?;
    s.kubectl(&["-n", NAMESPACE, "rollout", "restart", "ds/capstan"], None)?;
    let pod = s.wait_for("a restarted agent pod failing", ROLLOUT, || {
        failed_agent(s, &old)
    })?;
    let pod_name = name(&pod);
    // The last attempt's log (the container may be running again).
    let log = s
        .kubectl(
            &[
                "-n",
                NAMESPACE,
                "logs",
                &pod_name,
                "-c",
                "agent",
                "--previous",
            ],
            None,
        )
        .or_else(|_| s.kubectl(&["-n", NAMESPACE, "logs", &pod_name, "-c", "agent"], None))?;
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() != 1 || !lines[0].contains("net-conf.json") {
        return Err(format!(
            "agent pod {pod_name} on {} should fail with one line naming net-conf.json, logged:\n{log}",
            node_of(&pod)
        )
        .into());
    }
    eprintln!("agent pod {pod_name} on {}: {}", node_of(&pod), lines[0]);
    // The node whose agent now fails keeps its routes, rules and pods.
    node_port_answers(s)?;
    // The good config back, and a healthy agent everywhere again.
    s.kubectl(&["apply", "-k", &manifests().display().to_string()], None)?;
    s.kubectl(&["-n", NAMESPACE, "rollout", "restart", "ds/capstan"], None)?;
    s.rollout()?;
    node_port_answers(s)
}
