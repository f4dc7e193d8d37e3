//! Static pods from the manifest directory: one runs with an IP and
//! serves HTTP; init containers, env, volumes and CRI logs; ten at once.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use libtest_mimic::Failed;

use crate::manifests::*;
use crate::suite::*;
use crate::support::*;

pub fn static_pod_runs(s: &Suite) -> Result<(), Failed> {
    let t0 = Instant::now();
    s.put("web.yaml", &web_manifest("web"));
    let st = s.wait_status("web", "Running and Ready", Duration::from_secs(20), |st| {
        running(st) && condition(st, "Ready") == "True"
    })?;
    eprintln!("web: manifest → Running+Ready in {:?}", t0.elapsed());
    let ip = pod_ip(&st).ok_or("no podIP")?;
    check(
        ip.octets()[..3] == [10, 244, 7],
        format!("podIP {ip} not from {SUBNET}"),
    )?;
    check(
        st["status"]["hostIP"] == "192.168.250.11",
        format!("hostIP {}", st["status"]["hostIP"]),
    )?;
    for c in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
        check(
            condition(&st, c) == "True",
            format!("condition {c} not True"),
        )?;
    }
    let c = container(&st, "web");
    check(c["ready"] == true && c["restartCount"] == 0, format!("{c}"))?;
    check(
        c["imageID"]
            .as_str()
            .is_some_and(|i| i.contains("@sha256:")),
        format!("imageID {}", c["imageID"]),
    )?;
    // Served on the pod IP from the node's namespace; GET / answers the
    // host name, which is the pod name.
    let body = http_get(s, ip, "/")?;
    check(
        body.trim() == format!("web-{NODE}"),
        format!("GET / answered {body:?}"),
    )?;
    // The container is in the cgroup root of the lab.
    let id = container_id(&st, "web");
    let cg = std::fs::read_dir("/sys/fs/cgroup/memory").ok().map(|_| {
        PathBuf::from("/sys/fs/cgroup/memory")
            .join(s.lab.cgroup_root())
            .join(format!(
                "pod{}",
                st["metadata"]["uid"].as_str().unwrap_or("")
            ))
            .join(&id)
    });
    if let Some(cg) = cg {
        check(cg.is_dir(), format!("cgroup {} missing", cg.display()))?;
    }
    Ok(())
}

pub fn init_env_volumes_logs(s: &Suite) -> Result<(), Failed> {
    let host_dir = s.dir().join("hostpath-data");
    std::fs::create_dir_all(&host_dir)?;
    std::fs::write(host_dir.join("hello"), "from-host\n")?;
    s.put(
        "env.yaml",
        &format!(
            r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data: {{color: blue, greeting: hi-from-configmap}}
---
apiVersion: v1
kind: Secret
metadata: {{name: creds}}
stringData: {{password: hunter2}}
---
apiVersion: v1
kind: Pod
metadata:
  name: envpod
  labels: {{app: envtest}}
spec:
  restartPolicy: Always
  initContainers:
  - name: first
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sh", "-c", "echo one >> /work/order; sleep 0.3"]
    volumeMounts: [{{name: work, mountPath: /work}}]
  - name: second
    image: {IMAGE}
    command: ["sh", "-c", "echo two >> /work/order"]
    volumeMounts: [{{name: work, mountPath: /work}}]
  containers:
  - name: app
    image: {IMAGE}
    workingDir: /work
    command: ["sh", "-c"]
    args:
    - |
      cat order /host/hello
      echo "$(cat /cfg/greeting)"
      echo "$(cat /info/labels)"
      echo "NAME=$MY_NAME NS=$MY_NS IP=$MY_IP NODE=$MY_NODE COLOR=$COLOR PW=$PW EXPANDED=$EXPANDED"
      echo "PWD=$(pwd) HOST=$(hostname) UID=$(id -u)"
      grep -c nameserver /etc/resolv.conf
      echo to-stderr >&2
      touch /work/app-was-here
      exec sleep 3600
    env:
    - {{name: MY_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
    - {{name: MY_NS, valueFrom: {{fieldRef: {{fieldPath: metadata.namespace}}}}}}
    - {{name: MY_IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}
    - {{name: MY_NODE, valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}}}
    - {{name: COLOR, valueFrom: {{configMapKeyRef: {{name: settings, key: color}}}}}}
    - {{name: PW, valueFrom: {{secretKeyRef: {{name: creds, key: password}}}}}}
    - {{name: EXPANDED, value: "$(COLOR)-sky"}}
    volumeMounts:
    - {{name: work, mountPath: /work}}
    - {{name: host, mountPath: /host, readOnly: true}}
    - {{name: cfg, mountPath: /cfg}}
    - {{name: info, mountPath: /info}}
  - name: sidecar
    image: {IMAGE}
    command: ["sh", "-c", "while [ ! -f /shared/app-was-here ]; do sleep 0.1; done; echo saw-app-file; exec sleep 3600"]
    volumeMounts: [{{name: work, mountPath: /shared}}]
  volumes:
  - {{name: work, emptyDir: {{}}}}
  - {{name: host, hostPath: {{path: {host}, type: Directory}}}}
  - {{name: cfg, configMap: {{name: settings}}}}
  - name: info
    downwardAPI:
      items: [{{path: labels, fieldRef: {{fieldPath: "metadata.labels['app']"}}}}]
"#,
            host = host_dir.display()
        ),
    );
    let st = s.wait_status("envpod", "Running", Duration::from_secs(30), running)?;
    let init = st["status"]["initContainerStatuses"]
        .as_array()
        .ok_or("no initContainerStatuses")?;
    check(
        init.iter()
            .all(|c| c["state"]["terminated"]["exitCode"] == 0),
        format!("init statuses {init:?}"),
    )?;
    check(
        condition(&st, "Initialized") == "True",
        "Initialized not True",
    )?;
    let uid = st["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let ip = st["status"]["podIP"].as_str().unwrap_or("").to_string();
    let log_dir = s
        .dir()
        .join(format!("var/log/pods/default_envpod-{NODE}_{uid}"));
    let app_log = log_dir.join("app/0.log");
    let side_log = log_dir.join("sidecar/0.log");
    let mut text = String::new();
    wait_for("app and sidecar logs", Duration::from_secs(10), || {
        text = std::fs::read_to_string(&app_log).unwrap_or_default();
        let side = std::fs::read_to_string(&side_log).unwrap_or_default();
        text.contains("to-stderr") && side.contains("saw-app-file")
    })
    .map_err(|e| format!("{e:?}; app log:\n{text}"))?;
    let lines: Vec<&str> = text.lines().collect();
    // CRI format: <RFC3339Nano> <stream> <F|P> <text>
    for l in &lines {
        let mut f = l.splitn(4, ' ');
        let (ts, stream, tag) = (f.next(), f.next(), f.next());
        check(
            ts.is_some_and(|t| t.contains('T') && t.ends_with('Z'))
                && matches!(stream, Some("stdout" | "stderr"))
                && matches!(tag, Some("F" | "P")),
            format!("not a CRI log line: {l:?}"),
        )?;
    }
    let msgs: Vec<&str> = lines
        .iter()
        .filter(|l| l.contains(" stdout "))
        .filter_map(|l| l.splitn(4, ' ').nth(3))
        .collect();
    let want = [
        "one".to_string(),
        "two".to_string(),
        "from-host".to_string(),
        "hi-from-configmap".to_string(),
        "envtest".to_string(),
        format!("NAME=envpod-{NODE} NS=default IP={ip} NODE={NODE} COLOR=blue PW=hunter2 EXPANDED=blue-sky"),
        format!("PWD=/work HOST=envpod-{NODE} UID=0"),
        "1".to_string(),
    ];
    check(
        msgs[..want.len().min(msgs.len())] == want[..],
        format!("app output {msgs:?}, want {want:?}"),
    )?;
    check(
        lines.iter().any(|l| l.contains(" stderr F to-stderr")),
        "stderr line missing",
    )?;
    // hostPath is read-only in the container.
    let id = container_id(&st, "app");
    let r = s.ctr(&[
        "tasks",
        "exec",
        "--exec-id",
        "rw",
        &id,
        "sh",
        "-c",
        "echo x > /host/new",
    ]);
    check(r.is_err(), "write to read-only hostPath succeeded")?;
    s.delete("env.yaml");
    Ok(())
}

pub fn ten_pods_latency(s: &Suite) -> Result<(), Failed> {
    const N: usize = 10;
    let names: Vec<String> = (0..N).map(|i| format!("burst{i}")).collect();
    let t0 = Instant::now();
    for n in &names {
        s.put(
            &format!("{n}.yaml"),
            &format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: {n}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {{name: main, image: {IMAGE}, imagePullPolicy: IfNotPresent, command: [sleep, '3600']}}\n"
            ),
        );
    }
    let mut done: Vec<Option<Duration>> = vec![None; N];
    wait_for("10 pods Running", Duration::from_secs(30), || {
        for (i, n) in names.iter().enumerate() {
            if done[i].is_none() && s.status(n).is_some_and(|st| running(&st)) {
                done[i] = Some(t0.elapsed());
            }
        }
        done.iter().all(Option::is_some)
    })
    .map_err(|e| format!("{e:?}\n{}", s.log()))?;
    let mut lat: Vec<Duration> = done.into_iter().flatten().collect();
    lat.sort();
    let p50 = lat[N / 2];
    let p99 = lat[N - 1];
    eprintln!(
        "10 pods at once, manifest written → Running: p50 {p50:?}, p99 {p99:?} (debug build)"
    );
    for n in &names {
        s.delete(&format!("{n}.yaml"));
    }
    wait_for("burst pods removed", Duration::from_secs(20), || {
        names.iter().all(|n| s.status(n).is_none())
    })?;
    check(p99 < Duration::from_secs(10), format!("p99 {p99:?}"))
}
