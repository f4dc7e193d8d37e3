//! Small pieces every kubelet_e2e feature reads pods and Events with:
//! conditions, container IDs, hostPath hand-over files, Event waits and
//! deletes. No test lives here.

use std::time::Duration;

use capstan_lab::cmd;
use libtest_mimic::Failed;
use serde_json::Value;

use crate::kube_suite::wait_for;
use crate::suite::Suite;

pub fn condition<'a>(obj: &'a Value, kind: &str) -> &'a Value {
    obj["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == kind))
        .map_or(&Value::Null, |c| &c["status"])
}

pub fn container_id(pod: &Value) -> String {
    pod["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

pub fn node_index(s: &Suite, pod: &Value) -> usize {
    usize::from(pod["spec"]["nodeName"] == s.lab.node(1).name())
}

/// SIGKILL to a container's task, behind the kubelet's back.
pub fn kill_container(s: &Suite, node: usize, pod: &Value) -> Result<(), Failed> {
    let id = container_id(pod);
    let cid = id.trim_start_matches("containerd://");
    let mut ctr = s.lab.node(node).ctr().map_err(|e| e.to_string())?;
    cmd::run(ctr.args(["tasks", "kill", "-s", "SIGKILL", cid])).map_err(|e| e.to_string())?;
    Ok(())
}

pub fn timestamp(v: &Value) -> Option<jiff::Timestamp> {
    v.as_str()?.parse().ok()
}

/// A hostPath directory in node `i`'s lab directory, for files a test and
/// a container hand each other.
pub fn shared_dir(s: &Suite, i: usize, name: &str) -> Result<std::path::PathBuf, Failed> {
    let dir = s.lab.node(i).dir().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Drops a file the container polls for, whole (written, then renamed).
pub fn hand_over(dir: &std::path::Path, name: &str, text: &str) -> Result<(), Failed> {
    let tmp = dir.join(format!(".{name}"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, dir.join(name))?;
    Ok(())
}

/// The kubelet's Events about `pod` once every `(reason, text in the
/// message)` of `want` is among them.
pub fn events_for(s: &Suite, pod: &str, want: &[(&str, &str)]) -> Result<Vec<Value>, Failed> {
    let found = || {
        let list = s.get(&["events"])?;
        let evs: Vec<Value> = list["items"]
            .as_array()?
            .iter()
            .filter(|e| e["involvedObject"]["name"] == pod && e["source"]["component"] == "kubelet")
            .cloned()
            .collect();
        want.iter()
            .all(|(reason, text)| {
                evs.iter().any(|e| {
                    e["reason"] == *reason
                        && e["message"].as_str().is_some_and(|m| m.contains(text))
                })
            })
            .then_some(evs)
    };
    wait_for(
        &format!("events {want:?} for {pod}"),
        Duration::from_secs(10),
        found,
        || format!("events: {:?}", s.get(&["events"])),
    )
}

pub fn delete_pod(s: &Suite, name: &str) -> Result<(), Failed> {
    s.kubectl(&["delete", "pod", name, "--wait=false"], None)?;
    wait_for(
        &format!("{name} gone"),
        Duration::from_secs(20),
        || s.get(&["pod", name]).is_none().then_some(()),
        || s.log(),
    )
}

/// A field of the first container's waiting state ("" when not waiting).
pub fn waiting(p: &Value, field: &str) -> String {
    p["status"]["containerStatuses"][0]["state"]["waiting"][field]
        .as_str()
        .unwrap_or_default()
        .to_string()
}
