//! Memory pressure: the lowest-priority pod is evicted with an Event, and
//! the Node's conditions and taint follow.

use std::time::{Duration, Instant};

use libtest_mimic::Failed;
use serde_json::Value;

use crate::manifests::*;
use crate::pressure::*;
use crate::socket_proxy::SocketProxy;
use crate::suite::*;
use crate::support::*;

/// Memory pressure without touching the host: `--system-reserved` leaves
/// 350Mi minus the 100Mi hard threshold = 250Mi allocatable, so the
/// allocatable-memory signal falls below 100Mi once the pods' working sets
/// pass 150Mi. A priority-1000 pod holds 100Mi, then a priority-0 pod
/// 80Mi: the low-priority one goes although it uses less (both exceed
/// their zero requests, so priority decides), Failed/Evicted with an
/// Event; the other keeps running; MemoryPressure (and its NoSchedule
/// taint) goes True, then back to False after the 3 s transition period.
/// Last, Ready goes False while the agent's containerd socket (a proxy in
/// the test) is cut off, and True again once it is back.
pub fn memory_pressure_eviction(s: &Suite) -> Result<(), Failed> {
    let t0 = Instant::now();
    let total = mem_total_bytes()?;
    let reserved = total - (350 << 20);
    let mut pa = PressureAgent::start(
        s,
        &[
            format!("--system-reserved=cpu=100m,memory={reserved}"),
            "--kube-reserved=cpu=50m".into(),
            "--eviction-hard=memory.available<100Mi,nodefs.available<10%".into(),
            "--eviction-pressure-transition-period=3s".into(),
        ],
    )?;
    let proxy_path = pa.proxy_path();
    let containerd = s.lab.node(0).containerd_socket();

    // Allocatable = capacity − system-reserved − kube-reserved − hard threshold.
    let mut node = Value::Null;
    wait_for(
        "Node registered with MemoryPressure=False",
        Duration::from_secs(15),
        || {
            node = pa.get(&["node", NODE]).unwrap_or(Value::Null);
            condition(&node, "MemoryPressure") == "False"
        },
    )
    .map_err(|e| pa.with_log(e))?;
    let cap = &node["status"]["capacity"];
    let alloc = &node["status"]["allocatable"];
    check(
        quantity(&cap["memory"], false) == total,
        format!("capacity memory {} is not MemTotal {total}", cap["memory"]),
    )?;
    check(
        quantity(&alloc["memory"], false) == total - reserved - (100 << 20),
        format!("allocatable memory {} != 250Mi", alloc["memory"]),
    )?;
    check(
        quantity(&alloc["cpu"], true) == quantity(&cap["cpu"], true) - 150,
        format!(
            "allocatable cpu {} != capacity {} − 150m",
            alloc["cpu"], cap["cpu"]
        ),
    )?;
    let eph = quantity(&cap["ephemeral-storage"], false);
    check(
        eph > 0 && quantity(&alloc["ephemeral-storage"], false) == eph - (eph as f64 * 0.10) as i64,
        format!(
            "allocatable ephemeral-storage {} != capacity {} − 10%",
            alloc["ephemeral-storage"], cap["ephemeral-storage"]
        ),
    )?;
    check(
        condition(&node, "DiskPressure") == "False" && condition(&node, "PIDPressure") == "False",
        format!(
            "DiskPressure or PIDPressure is not False: {}",
            node["status"]["conditions"]
        ),
    )?;

    pa.kubectl(
        &["apply", "-f", "-"],
        Some(&hog_manifest("important", 1000, 100)),
    )?;
    let mut uid = String::new();
    wait_for("important pod holds 100Mi", Duration::from_secs(20), || {
        if uid.is_empty() {
            uid = pa
                .get(&["pod", "important"])
                .and_then(|p| p["metadata"]["uid"].as_str().map(str::to_string))
                .unwrap_or_default();
        }
        pa.pod_memory(&uid).is_some_and(|m| m >= 100 << 20)
    })
    .map_err(|e| pa.with_log(e))?;
    check(
        condition(
            &pa.get(&["node", NODE]).unwrap_or_default(),
            "MemoryPressure",
        ) == "False",
        "MemoryPressure with only 100Mi in use",
    )?;

    pa.kubectl(
        &["apply", "-f", "-"],
        Some(&hog_manifest("expendable", 0, 80)),
    )?;
    let (mut seen_pressure, mut seen_taint, mut evicted) = (false, false, Value::Null);
    // The taint comes in a patch of its own after the condition's, so the
    // wait goes on until it was seen too (the eviction can be quicker);
    // when only the taint is missing, the check below says so.
    let waited = wait_for("expendable pod evicted", Duration::from_secs(20), || {
        if let Some(n) = pa.get(&["node", NODE]) {
            if condition(&n, "MemoryPressure") == "True" {
                seen_pressure = true;
                seen_taint |= has_taint(&n, "node.kubernetes.io/memory-pressure");
            }
        }
        let p = pa.get(&["pod", "expendable"]).unwrap_or_default();
        let done = p["status"]["phase"] == "Failed" && p["status"]["reason"] == "Evicted";
        if done {
            evicted = p;
        }
        done && seen_pressure && seen_taint
    });
    if evicted.is_null() || !seen_pressure {
        waited.map_err(|e| pa.with_log(e))?;
    }
    let msg = evicted["status"]["message"].as_str().unwrap_or("");
    check(
        msg.starts_with("The node was low on resource: memory. Threshold quantity: 100Mi")
            && msg.contains("Container hog was using"),
        format!("eviction message: {msg:?}"),
    )?;
    check(
        seen_taint,
        "no memory-pressure NoSchedule taint while under pressure",
    )?;
    let events = pa.get(&["events", "-n", "default"]).unwrap_or_default();
    let event = events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["involvedObject"]["name"] == "expendable" && e["reason"] == "Evicted");
    check(
        event.is_some_and(|e| e["type"] == "Warning" && e["message"] == msg),
        format!("no Evicted event for the pod: {events}"),
    )?;

    // The important pod was not touched, and pressure clears.
    wait_for(
        "MemoryPressure back to False, taint gone",
        Duration::from_secs(15),
        || {
            let n = pa.get(&["node", NODE]).unwrap_or_default();
            condition(&n, "MemoryPressure") == "False"
                && !has_taint(&n, "node.kubernetes.io/memory-pressure")
        },
    )
    .map_err(|e| pa.with_log(e))?;
    let important = pa.get(&["pod", "important"]).unwrap_or_default();
    check(
        important["status"]["phase"] == "Running"
            && important["status"]["containerStatuses"][0]["restartCount"] == 0
            && important["status"]["containerStatuses"][0]["state"]["running"].is_object(),
        format!("important pod disturbed: {}", important["status"]),
    )?;
    check(
        pa.pod_memory(&uid).is_some_and(|m| m >= 100 << 20),
        "important pod lost its memory",
    )?;
    eprintln!("memory pressure eviction: {:?} in all", t0.elapsed());
    pa.remove_pods().map_err(|e| pa.with_log(e))?;
    let left = s.ctr(&["containers", "ls", "-q"])?;
    check(
        !left.lines().any(|id| id.starts_with("hog-")),
        format!("containers left after the pods were deleted: {left}"),
    )?;

    // Ready follows the container runtime: cut the agent off, then back.
    let ready = |pa: &PressureAgent, want: &str| {
        let n = pa.get(&["node", NODE]).unwrap_or_default();
        let c = n["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Ready")
            .cloned()
            .unwrap_or_default();
        c["status"] == want
            && (want == "True"
                || c["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("container runtime is down")))
    };
    let t_cut = Instant::now();
    if let Some(p) = pa.proxy.as_mut() {
        p.close();
    }
    wait_for("Ready=False, runtime down", Duration::from_secs(15), || {
        ready(&pa, "False")
    })
    .map_err(|e| pa.with_log(e))?;
    let down_after = t_cut.elapsed();
    // The old proxy's drop removes the socket path: it goes first.
    pa.proxy = None;
    pa.proxy = Some(SocketProxy::start(&proxy_path, &containerd)?);
    wait_for("Ready=True again", Duration::from_secs(15), || {
        ready(&pa, "True")
    })
    .map_err(|e| pa.with_log(e))?;
    eprintln!("runtime cut: Ready=False after {down_after:?}, True again after reconnecting");
    Ok(())
}
