//! Reading a pod's status file (phase, conditions, containers, IP),
//! fetching a page from a pod, and the suite's wait and check. No test
//! lives here.

use std::net::Ipv4Addr;
use std::time::Duration;

use libtest_mimic::Failed;
use serde_json::Value;

use crate::suite::*;

/// capstan-lab's wait as this suite's result: the condition held, or the
/// timeout naming what was awaited.
pub fn wait_for(what: &str, timeout: Duration, f: impl FnMut() -> bool) -> Result<(), Failed> {
    capstan_lab::wait::wait_until(what, timeout, f)?;
    Ok(())
}

pub fn check(ok: bool, msg: impl Into<String>) -> Result<(), Failed> {
    if ok {
        Ok(())
    } else {
        Err(msg.into().into())
    }
}

pub fn phase(s: &Value) -> &str {
    s["status"]["phase"].as_str().unwrap_or("")
}

/// The status of condition `kind` of a pod or a Node ("" when absent).
pub fn condition(s: &Value, kind: &str) -> String {
    s["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == kind)
        .and_then(|c| c["status"].as_str())
        .unwrap_or("")
        .to_string()
}

pub fn container<'a>(s: &'a Value, name: &str) -> &'a Value {
    s["status"]["containerStatuses"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .unwrap_or(&Value::Null)
}

pub fn container_id(s: &Value, name: &str) -> String {
    container(s, name)["containerID"]
        .as_str()
        .unwrap_or("")
        .trim_start_matches("containerd://")
        .to_string()
}

pub fn running(s: &Value) -> bool {
    phase(s) == "Running"
        && s["status"]["containerStatuses"]
            .as_array()
            .is_some_and(|a| a.iter().all(|c| c["state"]["running"].is_object()))
}

pub fn pod_ip(s: &Value) -> Option<Ipv4Addr> {
    s["status"]["podIP"].as_str()?.parse().ok()
}

pub fn pod_running(p: &Value) -> bool {
    p["status"]["phase"] == "Running"
        && p["status"]["containerStatuses"][0]["state"]["running"].is_object()
}

pub fn http_get(s: &Suite, ip: Ipv4Addr, path: &str) -> Result<String, Failed> {
    s.in_node(
        "wget",
        &[
            "-q",
            "-T",
            "2",
            "-O",
            "-",
            &format!("http://{ip}:8080{path}"),
        ],
    )
}
