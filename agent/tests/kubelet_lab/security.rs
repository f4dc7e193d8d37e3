//! Security contexts (users, capabilities, read-only root) and
//! hostNetwork pods.

use std::path::PathBuf;
use std::time::Duration;

use libtest_mimic::Failed;

use crate::suite::*;
use crate::support::*;

pub fn security_and_host_network(s: &Suite) -> Result<(), Failed> {
    s.put(
        "sec.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: sec}}
spec:
  terminationGracePeriodSeconds: 1
  securityContext: {{runAsUser: 1000, runAsGroup: 3000, supplementalGroups: [4000]}}
  containers:
  - name: main
    image: {IMAGE}
    command: ["sh", "-c"]
    args:
    - |
      echo "ID=$(id -u):$(id -g) GROUPS=$(id -G)"
      touch /rootfs-file 2>/dev/null && echo rootfs-writable || echo rootfs-readonly
      exec sleep 3600
    securityContext:
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      capabilities: {{drop: [ALL]}}
    resources: {{limits: {{cpu: 250m, memory: 32Mi}}, requests: {{cpu: 100m}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: hostnet}}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: main, image: {IMAGE}, command: ["sh", "-c", "ip -4 -o addr show eth0; exec sleep 3600"]}}
"#
        ),
    );
    let st = s.wait_status("sec", "Running", Duration::from_secs(20), running)?;
    let uid = st["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let log = s
        .dir()
        .join(format!("var/log/pods/default_sec-{NODE}_{uid}/main/0.log"));
    let mut text = String::new();
    wait_for("sec output", Duration::from_secs(5), || {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("rootfs-")
    })
    .map_err(|e| format!("{e:?}: {text:?}"))?;
    check(
        text.contains("ID=1000:3000 GROUPS=3000 4000") && text.contains("rootfs-readonly"),
        format!("security context not applied: {text:?}"),
    )?;
    let id = container_id(&st, "main");
    let status = s.ctr(&[
        "tasks",
        "exec",
        "--exec-id",
        "caps",
        &id,
        "grep",
        "CapEff",
        "/proc/self/status",
    ])?;
    check(
        status.contains("0000000000000000"),
        format!("capabilities not dropped: {status}"),
    )?;
    // cgroup limits from resources (cgroup v1 hierarchies).
    let cg = |ctrl: &str, file: &str| {
        std::fs::read_to_string(
            PathBuf::from("/sys/fs/cgroup")
                .join(ctrl)
                .join(s.lab.cgroup_root())
                .join(format!("pod{uid}"))
                .join(&id)
                .join(file),
        )
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
    };
    check(
        cg("memory", "memory.limit_in_bytes") == (32u64 << 20).to_string(),
        format!("memory limit {}", cg("memory", "memory.limit_in_bytes")),
    )?;
    check(
        cg("cpu", "cpu.cfs_quota_us") == "25000" && cg("cpu", "cpu.shares") == "102",
        format!(
            "cpu quota {} shares {}",
            cg("cpu", "cpu.cfs_quota_us"),
            cg("cpu", "cpu.shares")
        ),
    )?;
    let st = s.wait_status("hostnet", "Running", Duration::from_secs(20), running)?;
    check(
        st["status"]["podIP"] == "192.168.250.11",
        format!("hostNetwork podIP {}", st["status"]["podIP"]),
    )?;
    let uid = st["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let log = s.dir().join(format!(
        "var/log/pods/default_hostnet-{NODE}_{uid}/main/0.log"
    ));
    wait_for("hostnet output", Duration::from_secs(5), || {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("192.168.250.11")
    })
    .map_err(|e| format!("{e:?}: host network not joined: {text:?}"))?;
    s.delete("sec.yaml");
    Ok(())
}
