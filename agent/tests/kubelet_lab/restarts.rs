//! Containers over their life: restarts and CrashLoopBackOff, liveness and
//! readiness probes, restart policies, the postStart hook before the
//! startup probe.

use std::time::Duration;

use libtest_mimic::Failed;

use crate::suite::*;
use crate::support::*;

pub fn restarts_and_backoff(s: &Suite) -> Result<(), Failed> {
    s.put(
        "crash.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: sleeper}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {IMAGE}
    command: ["sleep", "3600"]
---
apiVersion: v1
kind: Pod
metadata: {{name: crasher}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {IMAGE}
    command: ["sh", "-c", "exit 3"]
"#
        ),
    );
    let st = s.wait_status("sleeper", "Running", Duration::from_secs(20), running)?;
    let id = container_id(&st, "main");
    s.ctr(&["tasks", "kill", "--signal", "SIGKILL", &id])?;
    let st = s.wait_status("sleeper", "restarted", Duration::from_secs(15), |st| {
        let c = container(st, "main");
        running(st) && c["restartCount"] == 1
    })?;
    let c = container(&st, "main");
    check(
        c["lastState"]["terminated"]["exitCode"] == 137,
        format!("lastState {}", c["lastState"]),
    )?;
    check(
        container_id(&st, "main") != id,
        "same container ID after restart",
    )?;
    // The crasher restarts once at once, then waits 10 s in CrashLoopBackOff.
    let st = s.wait_status(
        "crasher",
        "CrashLoopBackOff",
        Duration::from_secs(20),
        |st| {
            let c = container(st, "main");
            c["restartCount"] == 1 && c["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        },
    )?;
    let c = container(&st, "main");
    check(
        c["lastState"]["terminated"]["exitCode"] == 3
            && c["lastState"]["terminated"]["reason"] == "Error",
        format!("lastState {}", c["lastState"]),
    )?;
    check(
        c["state"]["waiting"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("back-off 10s")),
        format!("{}", c["state"]),
    )?;
    check(phase(&st) == "Running", format!("phase {}", phase(&st)))?;
    std::thread::sleep(Duration::from_secs(3));
    let st = s.status("crasher").ok_or("crasher status gone")?;
    check(
        container(&st, "main")["restartCount"] == 1,
        "restarted during back-off",
    )?;
    s.delete("crash.yaml");
    Ok(())
}

pub fn liveness_restarts(s: &Suite) -> Result<(), Failed> {
    s.put(
        "live.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: live}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {IMAGE}
    command: ["sh", "-c", "touch /tmp/alive; exec sleep 3600"]
    livenessProbe:
      exec: {{command: ["test", "-f", "/tmp/alive"]}}
      periodSeconds: 1
      failureThreshold: 2
"#
        ),
    );
    let st = s.wait_status("live", "Running", Duration::from_secs(20), running)?;
    let id = container_id(&st, "main");
    std::thread::sleep(Duration::from_millis(1500));
    let st = s.status("live").ok_or("no status")?;
    check(
        container(&st, "main")["restartCount"] == 0,
        "restarted while the probe passed",
    )?;
    s.ctr(&["tasks", "exec", "--exec-id", "rm", &id, "rm", "/tmp/alive"])?;
    let st = s.wait_status(
        "live",
        "restart by liveness",
        Duration::from_secs(15),
        |st| container(st, "main")["restartCount"] == 1 && running(st),
    )?;
    check(container_id(&st, "main") != id, "same container")?;
    s.delete("live.yaml");
    Ok(())
}

pub fn readiness_flips(s: &Suite) -> Result<(), Failed> {
    s.put(
        "ready.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: ready}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {IMAGE}
    command: ["sleep", "3600"]
    readinessProbe:
      exec: {{command: ["test", "-f", "/tmp/ready"]}}
      periodSeconds: 1
      failureThreshold: 1
"#
        ),
    );
    let st = s.wait_status("ready", "Running", Duration::from_secs(20), running)?;
    std::thread::sleep(Duration::from_millis(1200));
    let st = s.status("ready").unwrap_or(st);
    check(
        condition(&st, "Ready") == "False",
        "Ready before the probe passed",
    )?;
    let id = container_id(&st, "main");
    s.ctr(&[
        "tasks",
        "exec",
        "--exec-id",
        "t1",
        &id,
        "touch",
        "/tmp/ready",
    ])?;
    s.wait_status("ready", "Ready=True", Duration::from_secs(10), |st| {
        condition(st, "Ready") == "True" && container(st, "main")["ready"] == true
    })?;
    s.ctr(&["tasks", "exec", "--exec-id", "t2", &id, "rm", "/tmp/ready"])?;
    let st = s.wait_status("ready", "Ready=False", Duration::from_secs(10), |st| {
        condition(st, "Ready") == "False"
    })?;
    check(
        container(&st, "main")["restartCount"] == 0,
        "readiness must not restart",
    )?;
    s.delete("ready.yaml");
    Ok(())
}

pub fn restart_policies(s: &Suite) -> Result<(), Failed> {
    s.put(
        "policies.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: never}}
spec:
  restartPolicy: Never
  containers:
  - {{name: main, image: {IMAGE}, command: ["sh", "-c", "exit 3"]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: onfailure}}
spec:
  restartPolicy: OnFailure
  containers:
  - {{name: main, image: {IMAGE}, command: ["sh", "-c", "[ -f /tmp/x ] || exit 0"]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: oom}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: {IMAGE}
    command: ["sh", "-c", "x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; while true; do x=$x$x; done"]
    resources: {{limits: {{memory: 16Mi}}}}
"#
        ),
    );
    let st = s.wait_status("never", "Failed", Duration::from_secs(20), |st| {
        phase(st) == "Failed"
    })?;
    let c = container(&st, "main");
    check(
        c["state"]["terminated"]["exitCode"] == 3 && c["restartCount"] == 0,
        format!("{c}"),
    )?;
    s.wait_status("onfailure", "Succeeded", Duration::from_secs(20), |st| {
        phase(st) == "Succeeded" && container(st, "main")["state"]["terminated"]["exitCode"] == 0
    })?;
    let st = s.wait_status("oom", "Failed (OOM)", Duration::from_secs(30), |st| {
        phase(st) == "Failed"
    })?;
    let term = &container(&st, "main")["state"]["terminated"];
    check(
        term["reason"] == "OOMKilled" && term["exitCode"] == 137,
        format!("oom container: {term}"),
    )?;
    s.delete("policies.yaml");
    Ok(())
}

pub fn post_start_and_startup(s: &Suite) -> Result<(), Failed> {
    s.put(
        "hooks.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: hooks}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {IMAGE}
    command: ["sleep", "3600"]
    lifecycle:
      postStart:
        exec: {{command: ["touch", "/tmp/started"]}}
    startupProbe:
      exec: {{command: ["test", "-f", "/tmp/started"]}}
      periodSeconds: 1
      failureThreshold: 5
"#
        ),
    );
    // Ready only once the startup probe saw the postStart hook's file.
    let st = s.wait_status(
        "hooks",
        "started and Ready",
        Duration::from_secs(20),
        |st| running(st) && condition(st, "Ready") == "True",
    )?;
    let c = container(&st, "main");
    check(
        c["started"] == true && c["restartCount"] == 0,
        format!("container {c}"),
    )?;
    s.delete("hooks.yaml");
    Ok(())
}
