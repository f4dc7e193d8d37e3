//! Readiness moves a pod in and out of its Service's endpoints; delete runs
//! preStop and SIGTERM within the grace period.

use std::time::{Duration, Instant};

use libtest_mimic::Failed;

use crate::kube_suite::wait_for;
use crate::suite::*;
use crate::support::*;

pub fn endpoint_ips(s: &Suite) -> Vec<String> {
    s.get(&["endpoints", "gate"])
        .and_then(|e| {
            Some(
                e["subsets"]
                    .as_array()?
                    .iter()
                    .flat_map(|ss| ss["addresses"].as_array().cloned().unwrap_or_default())
                    .filter_map(|a| a["ip"].as_str().map(String::from))
                    .collect(),
            )
        })
        .unwrap_or_default()
}

/// A pod whose readiness is a file in a hostPath directory: the Service's
/// endpoints follow it; `kubectl delete` then runs preStop and SIGTERM
/// (both leave a mark in the directory) well within the grace period.
pub fn readiness_and_delete(s: &Suite) -> Result<(), Failed> {
    let dir = s.lab.node(0).dir().join("gate");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("ready"), "")?;
    let node = s.lab.node(0).name().to_string();
    s.kubectl(
        &["apply", "--validate=false", "-f", "-"],
        Some(&format!(
            r#"apiVersion: v1
kind: Service
metadata: {{name: gate, namespace: default}}
spec:
  selector: {{app: gate}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: gate, namespace: default, labels: {{app: gate}}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 5
  volumes: [{{name: t, hostPath: {{path: {dir}}}}}]
  containers:
  - name: main
    image: {IMAGE}
    volumeMounts: [{{name: t, mountPath: /t}}]
    command: ["sh", "-c", "trap 'echo term > /t/term; exit 0' TERM; while true; do sleep 0.2; done"]
    readinessProbe:
      exec: {{command: ["test", "-f", "/t/ready"]}}
      periodSeconds: 1
    lifecycle:
      preStop: {{exec: {{command: ["sh", "-c", "echo prestop > /t/prestop"]}}}}
"#,
            dir = dir.display()
        )),
    )?;
    let pod = wait_for(
        "gate Ready",
        Duration::from_secs(30),
        || {
            s.get(&["pod", "gate"])
                .filter(|p| condition(p, "Ready") == "True")
        },
        || s.log(),
    )?;
    let ip = pod["status"]["podIP"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    wait_for(
        "the pod in the endpoints",
        Duration::from_secs(15),
        || endpoint_ips(s).contains(&ip).then_some(()),
        || format!("endpoints {:?}", endpoint_ips(s)),
    )?;
    std::fs::remove_file(dir.join("ready"))?;
    wait_for(
        "unready pod out of the endpoints",
        Duration::from_secs(15),
        || (!endpoint_ips(s).contains(&ip)).then_some(()),
        || format!("endpoints {:?}\n{}", endpoint_ips(s), s.log()),
    )?;
    std::fs::write(dir.join("ready"), "")?;
    wait_for(
        "ready pod back in the endpoints",
        Duration::from_secs(15),
        || endpoint_ips(s).contains(&ip).then_some(()),
        || format!("endpoints {:?}", endpoint_ips(s)),
    )?;
    let t0 = Instant::now();
    s.kubectl(&["delete", "pod", "gate", "--wait=false"], None)?;
    wait_for(
        "gate gone from the API",
        Duration::from_secs(20),
        || s.get(&["pod", "gate"]).is_none().then_some(()),
        || s.log(),
    )?;
    let took = t0.elapsed();
    let prestop = std::fs::read_to_string(dir.join("prestop")).unwrap_or_default();
    let term = std::fs::read_to_string(dir.join("term")).unwrap_or_default();
    if prestop.trim() != "prestop" || term.trim() != "term" || took > Duration::from_secs(5) {
        return Err(format!(
            "delete: preStop {prestop:?}, SIGTERM {term:?}, gone after {took:?} (grace 5 s)"
        )
        .into());
    }
    eprintln!("delete: preStop ran, SIGTERM handled, pod gone after {took:?}");
    let _ = s.kubectl(&["delete", "service", "gate"], None);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
