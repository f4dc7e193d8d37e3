//! Admission: pods that do not fit (CPU, node affinity, BestEffort under
//! memory pressure) are rejected with kubelet's reasons.

use std::time::{Duration, Instant};

use libtest_mimic::Failed;
use serde_json::Value;

use crate::manifests::*;
use crate::pressure::*;
use crate::suite::*;
use crate::support::*;

/// The pod was refused with `reason`, and kubelet's Event says why.
pub fn check_rejected(
    pa: &PressureAgent,
    name: &str,
    reason: &str,
    message: &str,
) -> Result<(), Failed> {
    let p = pa.wait_pod(
        name,
        &format!("Failed/{reason}"),
        Duration::from_secs(15),
        |p| p["status"]["phase"] == "Failed",
    )?;
    let st = &p["status"];
    check(
        st["reason"] == reason
            && st["message"] == format!("Pod was rejected: {message}").as_str()
            && st["containerStatuses"].is_null()
            && st["podIP"].is_null(),
        format!("pod {name}: status {st}, wanted {reason} / Pod was rejected: {message}"),
    )?;
    let mut ev = None;
    wait_for(
        &format!("{reason} event for {name}"),
        Duration::from_secs(5),
        || {
            ev = pa.event(name, reason);
            ev.is_some()
        },
    )?;
    let ev = ev.unwrap_or_default();
    check(
        ev["type"] == "Warning"
            && ev["message"] == message
            && ev["source"]["component"] == "kubelet",
        format!("{reason} event for {name}: {ev}"),
    )
}

/// kubelet's admission in the lab. With allocatable cpu A, a pod
/// requesting A/2 runs; one requesting A/2+100m is refused OutOfcpu with
/// kubelet's message and Event and never gets a container; a nodeSelector
/// the node lacks is refused (NodeAffinity) until the node is labelled.
/// Then the agent restarts with almost no cpu allocatable and a
/// `memory.available` threshold above the machine's memory (permanent
/// MemoryPressure): the running pod (system-critical priority, so never
/// evicted) is adopted, not judged again; a 50m pod is refused OutOfcpu
/// counting the adopted pod as used; a BestEffort pod is refused with
/// reason Evicted; a BestEffort pod tolerating the memory-pressure taint
/// is admitted (and, as the only candidate, evicted under the pressure).
pub fn admission_rejections(s: &Suite) -> Result<(), Failed> {
    let t0 = Instant::now();
    let base = |extra: &[String]| -> Vec<String> {
        let mut v = vec![
            "--kube-reserved=cpu=50m".to_string(),
            "--eviction-pressure-transition-period=3s".to_string(),
        ];
        v.extend_from_slice(extra);
        v
    };
    let mut pa = PressureAgent::start(
        s,
        &base(&[
            "--system-reserved=cpu=100m".into(),
            "--eviction-hard=memory.available<100Mi".into(),
        ]),
    )?;
    let mut node = Value::Null;
    wait_for("Node registered", Duration::from_secs(15), || {
        node = pa.node();
        condition(&node, "Ready") == "True"
    })
    .map_err(|e| pa.with_log(e))?;
    let cap_cpu = quantity(&node["status"]["capacity"]["cpu"], true);
    let alloc = quantity(&node["status"]["allocatable"]["cpu"], true);
    check(alloc == cap_cpu - 150, format!("allocatable cpu {alloc}"))?;

    let half = alloc / 2;
    // system-cluster-critical: the memory pressure later must not evict it.
    pa.apply(&pod_manifest(
        "fits",
        2_000_000_000,
        "sleep 3600",
        &cpu_request(half),
        "",
    ))?;
    let fits = pa.wait_pod("fits", "Running", Duration::from_secs(20), pod_running)?;
    let fits_id = fits["status"]["containerStatuses"][0]["containerID"].clone();

    pa.apply(&pod_manifest(
        "toobig",
        0,
        "sleep 3600",
        &cpu_request(half + 100),
        "",
    ))?;
    check_rejected(
        &pa,
        "toobig",
        "OutOfcpu",
        &format!(
            "Node didn't have enough resource: cpu, requested: {}, used: {half}, capacity: {alloc}",
            half + 100
        ),
    )?;
    let selector = "  nodeSelector:\n    disktype: ssd";
    pa.apply(&pod_manifest("elsewhere", 0, "sleep 3600", "", selector))?;
    check_rejected(
        &pa,
        "elsewhere",
        "NodeAffinity",
        "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector",
    )?;
    // The agent follows the Node's labels.
    pa.kubectl(&["label", "node", NODE, "disktype=ssd"], None)?;
    wait_for("label on the Node", Duration::from_secs(5), || {
        pa.node()["metadata"]["labels"]["disktype"] == "ssd"
    })?;
    pa.apply(&pod_manifest("labelled", 0, "sleep 3600", "", selector))?;
    pa.wait_pod("labelled", "Running", Duration::from_secs(20), pod_running)?;
    pa.kubectl(
        &["delete", "pod", "labelled", "--wait=true", "--timeout=20s"],
        None,
    )?;
    let left = s.ctr(&["containers", "ls", "-q"])?;
    check(
        !left.contains("toobig") && !left.contains("elsewhere"),
        format!("a refused pod got a container: {left}"),
    )?;
    eprintln!("admission, first agent: {:?}", t0.elapsed());

    // Permanent memory pressure and ~no cpu: what a re-judged "fits"
    // would fail both ways.
    let total = mem_total_bytes()?;
    pa.restart(&base(&[
        format!("--system-reserved=cpu={}m", cap_cpu - 150),
        format!("--eviction-hard=memory.available<{total}"),
    ]))?;
    wait_for("MemoryPressure=True", Duration::from_secs(15), || {
        let n = pa.node();
        condition(&n, "MemoryPressure") == "True"
            && quantity(&n["status"]["allocatable"]["cpu"], true) == 100
    })
    .map_err(|e| pa.with_log(e))?;
    pa.apply(&pod_manifest(
        "small",
        0,
        "sleep 3600",
        &cpu_request(50),
        "",
    ))?;
    check_rejected(
        &pa,
        "small",
        "OutOfcpu",
        &format!(
            "Node didn't have enough resource: cpu, requested: 50, used: {half}, capacity: 100"
        ),
    )?;
    pa.apply(&pod_manifest("besteffort", 0, "sleep 3600", "", ""))?;
    check_rejected(
        &pa,
        "besteffort",
        "Evicted",
        "The node had condition: [MemoryPressure]. ",
    )?;
    let tolerate = "  tolerations:\n  - key: node.kubernetes.io/memory-pressure\n    operator: Exists\n    effect: NoSchedule";
    pa.apply(&pod_manifest("tolerant", 0, "sleep 3600", "", tolerate))?;
    // Admitted, so the eviction manager (not admission) ends it.
    let p = pa.wait_pod(
        "tolerant",
        "evicted by the eviction manager",
        Duration::from_secs(20),
        |p| p["status"]["phase"] == "Failed",
    )?;
    check(
        p["status"]["reason"] == "Evicted"
            && p["status"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("The node was low on resource: memory.")),
        format!("tolerant pod: {}", p["status"]),
    )?;
    let fits = pa.get(&["pod", "fits"]).unwrap_or_default();
    check(
        pod_running(&fits)
            && fits["status"]["containerStatuses"][0]["containerID"] == fits_id
            && fits["status"]["containerStatuses"][0]["restartCount"] == 0,
        format!("the adopted pod was disturbed: {}", fits["status"]),
    )?;
    eprintln!("admission: {:?} in all", t0.elapsed());
    pa.remove_pods().map_err(|e| pa.with_log(e))
}
