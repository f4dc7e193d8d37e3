//! Containers that end: a killed one restarts, then backs off
//! (CrashLoopBackOff); a failing liveness probe restarts its container with
//! one folded Unhealthy Event.

use std::time::{Duration, Instant};

use libtest_mimic::Failed;
use serde_json::Value;

use crate::kube_suite::wait_for;
use crate::seed::ready_demo_pods;
use crate::suite::*;
use crate::support::*;

/// The first restart is immediate; a second exit soon after waits out
/// kubelet's 10 s back-off, shown as CrashLoopBackOff meanwhile.
pub fn killed_container_restarts(s: &Suite) -> Result<(), Failed> {
    let pods = wait_for(
        "demo pods",
        Duration::from_secs(30),
        || ready_demo_pods(s),
        || s.log(),
    )?;
    let pod = &pods[0];
    let name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let i = node_index(s, pod);
    let id = container_id(pod);
    let restarted = |n: u32| {
        s.get(&["pod", &name]).filter(|p| {
            p["status"]["containerStatuses"][0]["restartCount"] == n
                && condition(p, "Ready") == "True"
        })
    };
    kill_container(s, i, pod)?;
    let after = wait_for(
        "restartCount 1 and Ready again",
        Duration::from_secs(30),
        || restarted(1),
        || s.log(),
    )?;
    let last = &after["status"]["containerStatuses"][0]["lastState"]["terminated"];
    if last["exitCode"] != 137 || container_id(&after) == id {
        return Err(format!("after the kill: {}", after["status"]).into());
    }

    // Taken before the kill: the kubelet's back-off clock starts later.
    let killed = Instant::now();
    kill_container(s, i, &after)?;
    let waiting = wait_for(
        "CrashLoopBackOff after the second kill",
        Duration::from_secs(10),
        || {
            s.get(&["pod", &name]).filter(|p| {
                p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                    == "CrashLoopBackOff"
            })
        },
        || s.log(),
    )?;
    let st = &waiting["status"]["containerStatuses"][0];
    let msg = st["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or_default();
    if st["restartCount"] != 1 || !msg.contains("back-off 10s") || st["ready"] != false {
        return Err(format!("in back-off: {st}").into());
    }
    events_for(
        s,
        &name,
        &[("BackOff", "Back-off restarting failed container web")],
    )?;
    let again = wait_for(
        "restartCount 2 and Ready after the back-off",
        Duration::from_secs(30),
        || restarted(2),
        || s.log(),
    )?;
    let held = killed.elapsed();
    let st = &again["status"]["containerStatuses"][0];
    // Seconds resolution on both stamps: 10 s apart can read as 9.
    let gap = timestamp(&st["state"]["running"]["startedAt"])
        .zip(timestamp(&st["lastState"]["terminated"]["finishedAt"]))
        .map(|(started, finished)| started.as_second() - finished.as_second());
    if held < Duration::from_secs(10) || gap.is_none_or(|g| g < 9) {
        return Err(format!("second restart after {held:?} (stamps {gap:?} s apart): {st}").into());
    }
    eprintln!("second kill: {msg:?}, restarted after {held:?}");
    Ok(())
}

/// The container turns unhealthy by itself once told to (it removes the
/// file its exec liveness probe tests, once); the kubelet kills it (grace
/// 1 s; sh as PID 1 ignores SIGTERM, so SIGKILL: 137) and starts a new
/// attempt, which is healthy again. Nothing else ends this container.
pub fn liveness_restarts(s: &Suite) -> Result<(), Failed> {
    let dir = shared_dir(s, 1, "alive")?;
    let node = s.lab.node(1).name().to_string();
    s.kubectl(
        &["apply", "--validate=false", "-f", "-"],
        Some(&format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: alive, namespace: default}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  volumes: [{{name: t, hostPath: {{path: {dir}}}}}]
  containers:
  - name: main
    image: {IMAGE}
    volumeMounts: [{{name: t, mountPath: /t}}]
    command: ["sh", "-c", "touch /tmp/live; while true; do if [ -f /t/fail ]; then rm -f /t/fail /tmp/live; fi; sleep 0.2; done"]
    livenessProbe:
      exec: {{command: ["test", "-f", "/tmp/live"]}}
      periodSeconds: 1
      failureThreshold: 2
"#,
            dir = dir.display()
        )),
    )?;
    let pod = wait_for(
        "alive Running and Ready",
        Duration::from_secs(30),
        || {
            s.get(&["pod", "alive"])
                .filter(|p| condition(p, "Ready") == "True")
        },
        || s.log(),
    )?;
    let id = container_id(&pod);
    hand_over(&dir, "fail", "")?;
    let t0 = Instant::now();
    let after = wait_for(
        "restartCount 1 after the liveness probe failed",
        Duration::from_secs(30),
        || {
            s.get(&["pod", "alive"]).filter(|p| {
                p["status"]["containerStatuses"][0]["restartCount"] == 1
                    && condition(p, "Ready") == "True"
            })
        },
        || format!("{}\npod: {:?}", s.log(), s.get(&["pod", "alive"])),
    )?;
    let took = t0.elapsed();
    let st = &after["status"]["containerStatuses"][0];
    let last = &st["lastState"]["terminated"];
    if dir.join("fail").exists()
        || last["exitCode"] != 137
        || last["reason"] != "Error"
        || container_id(&after) == id
        || !st["state"]["running"].is_object()
    {
        return Err(format!("after the liveness failure: {st}").into());
    }
    events_for(
        s,
        "alive",
        &[
            ("Unhealthy", "Liveness probe failed"),
            ("Killing", "failed liveness probe, will be restarted"),
        ],
    )?;
    // Both failed runs (failureThreshold 2) said the same: ONE Event object
    // whose count the kubelet patched, as client-go's correlator.
    let unhealthy = |evs: &[Value]| -> Vec<Value> {
        evs.iter()
            .filter(|e| e["reason"] == "Unhealthy")
            .cloned()
            .collect()
    };
    let folded = wait_for(
        "one Unhealthy Event with count >= 2",
        Duration::from_secs(10),
        || {
            let evs = events_for(s, "alive", &[("Unhealthy", "Liveness probe failed")]).ok()?;
            let u = unhealthy(&evs);
            (u.len() == 1 && u[0]["count"].as_i64().is_some_and(|c| c >= 2)).then_some(u)
        },
        || format!("events: {:?}", s.get(&["events"])),
    )?;
    let u = &folded[0];
    if u["firstTimestamp"] == Value::Null
        || timestamp(&u["lastTimestamp"]) < timestamp(&u["firstTimestamp"])
    {
        return Err(format!("folded Unhealthy Event: {u}").into());
    }
    eprintln!(
        "liveness: unhealthy → restarted and Ready in {took:?}; Unhealthy x{} ({})",
        u["count"], u["message"]
    );
    delete_pod(s, "alive")?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
