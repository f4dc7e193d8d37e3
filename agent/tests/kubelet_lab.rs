//! The kubelet component in the lab: one node with its own containerd,
//! capstan-cni as the node's CNI plugin, static pods from a manifest
//! directory, and `capstan-agent --components kubelet`. One lab and one
//! agent are shared by the suite (harness = false); tests run in order.
//! The node-pressure test adds etcd, capstan-control and a second agent
//! (API pods, its own directories) to the same node for its duration.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use capstan_lab::control::ControlPlane;
use capstan_lab::daemon::Daemon;
use capstan_lab::{cmd, privileged, Lab};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

const AGENT: &str = env!("CARGO_BIN_EXE_capstan-agent");
const IMAGE: &str = "capstan.local/busybox:lab";
const NODE: &str = "node-1";
const SUBNET: &str = "10.244.7.1/24";

struct Suite {
    lab: Lab,
    agent: Mutex<Option<Daemon>>,
}

impl Suite {
    fn dir(&self) -> PathBuf {
        self.lab.node(0).dir().to_path_buf()
    }
    fn manifests(&self) -> PathBuf {
        self.dir().join("etc/kubernetes/manifests")
    }
    fn root(&self) -> PathBuf {
        self.dir().join("var/lib/capstan/kubelet")
    }
    fn netns_prefix(&self) -> String {
        format!("{}-pod-", self.lab.prefix())
    }
    fn args(&self) -> Vec<String> {
        let d = self.dir();
        let p = |s: &str| d.join(s).display().to_string();
        vec![
            "--components".into(),
            "kubelet".into(),
            "--node-name".into(),
            NODE.into(),
            "--containerd-socket".into(),
            self.lab.node(0).containerd_socket().display().to_string(),
            "--containerd-namespace".into(),
            "capstan".into(),
            "--cni-conf-dir".into(),
            p("etc/cni/net.d"),
            "--cni-bin-dir".into(),
            p("opt/cni/bin"),
            "--pod-manifest-path".into(),
            self.manifests().display().to_string(),
            "--root-dir".into(),
            self.root().display().to_string(),
            "--pod-log-dir".into(),
            p("var/log/pods"),
            // Pod namespaces must be visible inside containerd's own mount
            // namespace: /run/netns is a shared mount, the lab dir is not.
            "--netns-dir".into(),
            "/run/netns".into(),
            "--netns-prefix".into(),
            self.netns_prefix(),
            "--cluster-dns".into(),
            "10.96.0.10".into(),
            "--cgroup-root".into(),
            self.lab.cgroup_root(),
            "--sweep-interval".into(),
            "2".into(),
            // The lab's registry (registry_pulls) speaks plain HTTP.
            "--insecure-registry".into(),
            "127.0.0.1:5000".into(),
        ]
    }
    fn start_agent(&self) {
        let d = self
            .lab
            .node(0)
            .spawn("kubelet", Path::new(AGENT), &self.args())
            .expect("spawn agent");
        *self.agent.lock().unwrap_or_else(|e| e.into_inner()) = Some(d);
    }
    fn log(&self) -> String {
        capstan_lab::daemon::log_tail(&self.dir().join("logs/kubelet.log"), 40)
    }
    fn put(&self, file: &str, yaml: &str) {
        let tmp = self.manifests().join(format!(".{file}.tmp"));
        std::fs::write(&tmp, yaml).expect("write manifest");
        std::fs::rename(&tmp, self.manifests().join(file)).expect("move manifest");
    }
    fn delete(&self, file: &str) {
        std::fs::remove_file(self.manifests().join(file)).expect("remove manifest");
    }
    fn status(&self, pod: &str) -> Option<Value> {
        let p = self
            .root()
            .join("pod-status")
            .join(format!("default_{pod}-{NODE}.json"));
        serde_json::from_slice(&std::fs::read(p).ok()?).ok()
    }
    /// Polls the pod's status file until `f` holds.
    fn wait_status(
        &self,
        pod: &str,
        what: &str,
        timeout: Duration,
        f: impl Fn(&Value) -> bool,
    ) -> Result<Value, Failed> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(s) = self.status(pod) {
                if f(&s) {
                    return Ok(s);
                }
            }
            if Instant::now() > end {
                return Err(format!(
                    "pod {pod}: {what} not reached in {timeout:?}; last status:\n{}\nagent log:\n{}",
                    self.status(pod)
                        .map(|s| serde_json::to_string_pretty(&s["status"]).unwrap_or_default())
                        .unwrap_or_else(|| "none".into()),
                    self.log()
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    fn ctr(&self, args: &[&str]) -> Result<String, Failed> {
        let mut c = self.lab.node(0).ctr().map_err(|e| e.to_string())?;
        cmd::stdout(c.args(args)).map_err(|e| e.to_string().into())
    }
    fn in_node(&self, program: &str, args: &[&str]) -> Result<String, Failed> {
        let mut c = self
            .lab
            .node(0)
            .command(program)
            .map_err(|e| e.to_string())?;
        cmd::stdout(c.args(args)).map_err(|e| e.to_string().into())
    }
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Result<(), Failed> {
    let end = Instant::now() + timeout;
    while !f() {
        if Instant::now() > end {
            return Err(format!("{what}: not within {timeout:?}").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn check(ok: bool, msg: impl Into<String>) -> Result<(), Failed> {
    if ok {
        Ok(())
    } else {
        Err(msg.into().into())
    }
}

fn phase(s: &Value) -> &str {
    s["status"]["phase"].as_str().unwrap_or("")
}

fn condition(s: &Value, kind: &str) -> String {
    s["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == kind)
        .and_then(|c| c["status"].as_str())
        .unwrap_or("")
        .to_string()
}

fn container<'a>(s: &'a Value, name: &str) -> &'a Value {
    s["status"]["containerStatuses"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .unwrap_or(&Value::Null)
}

fn container_id(s: &Value, name: &str) -> String {
    container(s, name)["containerID"]
        .as_str()
        .unwrap_or("")
        .trim_start_matches("containerd://")
        .to_string()
}

fn running(s: &Value) -> bool {
    phase(s) == "Running"
        && s["status"]["containerStatuses"]
            .as_array()
            .is_some_and(|a| a.iter().all(|c| c["state"]["running"].is_object()))
}

fn pod_ip(s: &Value) -> Option<Ipv4Addr> {
    s["status"]["podIP"].as_str()?.parse().ok()
}

fn main() {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    if !privileged::require(
        "kubelet_lab",
        &[
            "ip",
            "containerd",
            "runc",
            "ctr",
            "wget",
            "ping",
            "skopeo",
            "docker-registry",
            "etcd",
            "kubectl",
        ],
    ) {
        return;
    }
    let cni = match capstan_lab::bins::path("capstan-cni") {
        Ok(p) => p,
        Err(e) => panic!("{e}; build it first: cargo build -p capstan-cni"),
    };
    let lab = Lab::builder()
        .nodes(1)
        .containerd(true)
        .build()
        .expect("build lab");
    let dir = lab.node(0).dir().to_path_buf();
    std::fs::copy(&cni, dir.join("opt/cni/bin/capstan")).expect("install capstan-cni");
    // Lowest-sorted wins: the 99- file must be ignored.
    std::fs::write(
        dir.join("etc/cni/net.d/10-capstan.conflist"),
        serde_json::json!({
            "cniVersion": "1.0.0",
            "name": "capstan",
            "plugins": [{
                "type": "capstan",
                "subnet": SUBNET,
                "bridge": "capstan0",
                "dataDir": dir.join("var/lib/cni/networks/capstan"),
            }]
        })
        .to_string(),
    )
    .expect("write conflist");
    std::fs::write(
        dir.join("etc/cni/net.d/99-ignored.conflist"),
        r#"{"cniVersion":"1.0.0","name":"bogus","plugins":[{"type":"no-such-plugin"}]}"#,
    )
    .expect("write conflist");
    std::fs::create_dir_all(dir.join("etc/kubernetes/manifests")).expect("manifest dir");
    let suite = Arc::new(Suite {
        lab,
        agent: Mutex::new(None),
    });
    suite.start_agent();

    let t = |name: &'static str, f: fn(&Suite) -> Result<(), Failed>| {
        let s = suite.clone();
        Trial::test(name, move || f(&s))
    };
    let trials = vec![
        t("static_pod_runs_with_ip_and_serves_http", static_pod_runs),
        t(
            "init_containers_env_volumes_and_cri_logs",
            init_env_volumes_logs,
        ),
        t(
            "killed_container_restarts_then_crash_loop_backoff",
            restarts_and_backoff,
        ),
        t("liveness_failure_restarts_container", liveness_restarts),
        t("readiness_flips_ready_condition", readiness_flips),
        t("restart_policy_never_and_onfailure", restart_policies),
        t(
            "removed_manifest_prestop_sigterm_and_full_cleanup",
            graceful_delete,
        ),
        t(
            "post_start_hook_gates_startup_probe",
            post_start_and_startup,
        ),
        t(
            "security_context_and_host_network",
            security_and_host_network,
        ),
        t(
            "ten_pods_at_once_create_to_running_latency",
            ten_pods_latency,
        ),
        t(
            "agent_kill_9_restart_adopts_and_sweeps_orphans",
            adoption_after_restart,
        ),
        t(
            "registry_pull_with_pull_secret_then_backoff_for_bad_references",
            registry_pulls,
        ),
        t(
            "memory_pressure_evicts_lowest_priority_pod_with_event_and_conditions",
            memory_pressure_eviction,
        ),
        t(
            "admission_rejects_out_of_cpu_node_affinity_and_best_effort_under_memory_pressure",
            admission_rejections,
        ),
        t(
            "disk_and_pid_pressure_evict_the_writer_then_the_forker",
            disk_and_pid_eviction,
        ),
    ];
    let conclusion = libtest_mimic::run(&args, trials);
    if let Some(mut d) = suite.agent.lock().unwrap_or_else(|e| e.into_inner()).take() {
        d.stop(Duration::from_secs(5));
    }
    // exit() skips destructors: the lab must go first.
    drop(suite);
    conclusion.exit();
}

fn web_manifest(name: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
  - name: web
    image: {IMAGE}
    command: ["/bin/capstan-testsrv", "serve", "--http", "0.0.0.0:8080"]
    ports: [{{name: http, containerPort: 8080}}]
    readinessProbe:
      httpGet: {{path: /healthz, port: http}}
      periodSeconds: 1
"#
    )
}

fn http_get(s: &Suite, ip: Ipv4Addr, path: &str) -> Result<String, Failed> {
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

fn static_pod_runs(s: &Suite) -> Result<(), Failed> {
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

fn init_env_volumes_logs(s: &Suite) -> Result<(), Failed> {
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

fn restarts_and_backoff(s: &Suite) -> Result<(), Failed> {
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

fn liveness_restarts(s: &Suite) -> Result<(), Failed> {
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

fn readiness_flips(s: &Suite) -> Result<(), Failed> {
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

fn restart_policies(s: &Suite) -> Result<(), Failed> {
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

fn netns_files(s: &Suite) -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&s.netns_prefix()))
        .collect()
}

fn ipam_records(s: &Suite) -> Vec<String> {
    std::fs::read_dir(s.dir().join("var/lib/cni/networks/capstan"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains('@'))
        .collect()
}

fn containers_of(s: &Suite, uid: &str) -> Result<Vec<String>, Failed> {
    let out = s.ctr(&[
        "containers",
        "ls",
        "-q",
        &format!("labels.\"io.kubernetes.pod.uid\"=={uid}"),
    ])?;
    Ok(out.lines().map(str::to_string).collect())
}

fn graceful_delete(s: &Suite) -> Result<(), Failed> {
    let marker_dir = s.dir().join("graceful");
    std::fs::create_dir_all(&marker_dir)?;
    s.put(
        "graceful.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: graceful}}
spec:
  terminationGracePeriodSeconds: 10
  containers:
  - name: main
    image: {IMAGE}
    command: ["sh", "-c", "trap 'echo sigterm >> /m/events; exit 0' TERM; while true; do sleep 0.1; done"]
    lifecycle:
      preStop:
        exec: {{command: ["sh", "-c", "echo prestop >> /m/events"]}}
    volumeMounts: [{{name: m, mountPath: /m}}]
  volumes:
  - {{name: m, hostPath: {{path: {}}}}}
"#,
            marker_dir.display()
        ),
    );
    let st = s.wait_status("graceful", "Running", Duration::from_secs(20), running)?;
    let uid = st["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let ip = pod_ip(&st).ok_or("no IP")?;
    let ns_before = netns_files(s);
    check(!ns_before.is_empty(), "no namespace files")?;
    let records_before = ipam_records(s);
    check(
        records_before
            .iter()
            .any(|r| r.starts_with(&ip.to_string())),
        format!("no IPAM record for {ip}: {records_before:?}"),
    )?;
    let t0 = Instant::now();
    s.delete("graceful.yaml");
    wait_for("status file removed", Duration::from_secs(15), || {
        s.status("graceful").is_none()
    })
    .map_err(|e| format!("{e:?}\n{}", s.log()))?;
    let took = t0.elapsed();
    let events = std::fs::read_to_string(marker_dir.join("events")).unwrap_or_default();
    check(
        events == "prestop\nsigterm\n",
        format!("hook/signal order: {events:?}"),
    )?;
    // Exited on SIGTERM: well within the 10 s grace period.
    check(
        took < Duration::from_secs(8),
        format!("deletion took {took:?}"),
    )?;
    check(containers_of(s, &uid)?.is_empty(), "containers left")?;
    check(
        !ipam_records(s)
            .iter()
            .any(|r| r.starts_with(&ip.to_string())),
        "IP not released (no CNI DEL)",
    )?;
    let sid_files: Vec<String> = netns_files(s)
        .into_iter()
        .filter(|n| !ns_before.contains(n) || n.is_empty())
        .collect();
    check(
        sid_files.is_empty(),
        format!("new namespace files {sid_files:?}"),
    )?;
    check(
        !s.root().join("pods").join(&uid).exists(),
        "pod state dir left",
    )?;
    Ok(())
}

fn adoption_after_restart(s: &Suite) -> Result<(), Failed> {
    s.put(
        "orphan.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: orphan}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: main, image: {IMAGE}, command: ["sleep", "3600"]}}
"#
        ),
    );
    let orphan = s.wait_status("orphan", "Running", Duration::from_secs(20), running)?;
    let orphan_uid = orphan["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let orphan_ip = pod_ip(&orphan).ok_or("no orphan IP")?;
    let web = s.wait_status("web", "Running", Duration::from_secs(5), running)?;
    let web_id = container_id(&web, "web");
    let web_ip = pod_ip(&web).ok_or("no web IP")?;
    let web_record: Vec<String> = ipam_records(s)
        .into_iter()
        .filter(|r| r.starts_with(&format!("{web_ip}@")))
        .collect();
    check(
        web_record.len() == 1,
        format!("web IPAM record {web_record:?}"),
    )?;

    // kill -9 the agent; while it is down the orphan's manifest goes.
    if let Some(mut d) = s.agent.lock().unwrap_or_else(|e| e.into_inner()).take() {
        d.kill();
    }
    s.delete("orphan.yaml");
    let mut ping = s.lab.node(0).command("ping").map_err(|e| e.to_string())?;
    let mut ping = ping
        .args(["-i", "0.2", "-W", "1", &web_ip.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    s.start_agent();
    // The orphan's containers, IP and namespaces are swept.
    wait_for("orphan swept", Duration::from_secs(20), || {
        containers_of(s, &orphan_uid).is_ok_and(|c| c.is_empty())
            && !ipam_records(s)
                .iter()
                .any(|r| r.starts_with(&format!("{orphan_ip}@")))
    })
    .map_err(|e| format!("{e:?}\n{}", s.log()))?;
    eprintln!("orphan swept {:?} after restart", t0.elapsed());
    let web2 = s.wait_status(
        "web",
        "Ready after restart",
        Duration::from_secs(10),
        |st| running(st) && condition(st, "Ready") == "True",
    )?;
    std::thread::sleep(Duration::from_millis(600));
    let _ = ping.kill();
    let out = ping.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let sent = text.lines().filter(|l| l.contains("icmp_seq")).count();
    check(sent >= 3, format!("ping output {text}"))?;
    let seqs: Vec<u32> = text
        .lines()
        .filter_map(|l| l.split("icmp_seq=").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    let max = seqs.iter().copied().max().unwrap_or(0);
    check(
        seqs.len() as u32 == max,
        format!("ping lost replies across the agent restart: {seqs:?}"),
    )?;
    check(
        container_id(&web2, "web") == web_id,
        "web container replaced",
    )?;
    check(
        container(&web2, "web")["restartCount"] == 0,
        "web restarted",
    )?;
    check(pod_ip(&web2) == Some(web_ip), "web IP changed (CNI re-ADD)")?;
    // Only web's reservation is left, the very one ADD made before.
    wait_for("only web's IP reserved", Duration::from_secs(10), || {
        ipam_records(s) == web_record
    })
    .map_err(|e| format!("{e:?}: {:?} vs {web_record:?}", ipam_records(s)))?;
    check(
        http_get(s, web_ip, "/")?.trim() == format!("web-{NODE}"),
        "web not serving",
    )?;
    Ok(())
}

fn security_and_host_network(s: &Suite) -> Result<(), Failed> {
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

fn ten_pods_latency(s: &Suite) -> Result<(), Failed> {
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

fn post_start_and_startup(s: &Suite) -> Result<(), Failed> {
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

/// The registry needs basic auth; the pod's imagePullSecret (a Secret in
/// the manifest directory, as static pods take them) carries it. A pulled
/// image runs; a missing one and one pulled without credentials end in
/// ImagePullBackOff with the registry's reason.
fn registry_pulls(s: &Suite) -> Result<(), Failed> {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let node = &s.lab.node(0);
    let password = format!("pw-{}", std::process::id());
    let hash = bcrypt::hash(&password, 4).map_err(|e| e.to_string())?;
    let registry =
        capstan_lab::registry::Registry::start(node, 5000, Some(&format!("lab:{hash}\n")))
            .map_err(|e| e.to_string())?;
    let archive = capstan_lab::registry::test_image_archive().map_err(|e| e.to_string())?;
    let image = registry
        .push(
            node,
            &archive,
            "capstan/pulled:v1",
            Some(("lab", &password)),
        )
        .map_err(|e| e.to_string())?;
    check(
        !s.ctr(&["images", "ls", "-q"])?.contains(&image),
        "the image is present before any pull",
    )?;
    let docker_config = serde_json::json!({"auths": {&registry.host: {"auth": b64(format!("lab:{password}").as_bytes())}}});
    let pod = |name: &str, image: &str, secret: bool| {
        let secrets = if secret {
            "  imagePullSecrets: [{name: regcred}]\n"
        } else {
            ""
        };
        format!(
            r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 1
{secrets}  containers:
  - name: main
    image: {image}
    command: ["sleep", "3600"]
"#
        )
    };
    let t0 = Instant::now();
    s.put(
        "pull.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: regcred\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {}\n---\n{}",
            b64(docker_config.to_string().as_bytes()),
            pod("pulled", &image, true)
        ),
    );
    let st = s.wait_status("pulled", "Running", Duration::from_secs(30), running)?;
    eprintln!(
        "pulled: manifest → Running (with the pull) in {:?}",
        t0.elapsed()
    );
    let c = container(&st, "main");
    check(
        c["imageID"]
            .as_str()
            .is_some_and(|i| i.contains("@sha256:")),
        format!("imageID {}", c["imageID"]),
    )?;
    check(
        s.ctr(&["images", "ls", "-q"])?.contains(&image),
        "pulled image not in containerd's image store",
    )?;

    // Present in the registry, but asked for without credentials: 401.
    let private = registry
        .push(
            node,
            &archive,
            "capstan/private:v1",
            Some(("lab", &password)),
        )
        .map_err(|e| e.to_string())?;
    let missing = format!("{}/capstan/missing:v1", registry.host);
    s.put(
        "missing.yaml",
        &format!(
            "{}---\n{}",
            pod("missing", &missing, true),
            pod("nocreds", &private, false)
        ),
    );
    let waiting = |st: &Value, field: &str| {
        container(st, "main")["state"]["waiting"][field]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    for (name, why) in [
        ("missing", "manifest unknown"),
        ("nocreds", "not authorized"),
    ] {
        let st = s.wait_status(name, "ImagePullBackOff", Duration::from_secs(20), |st| {
            waiting(st, "reason") == "ImagePullBackOff"
        })?;
        let msg = waiting(&st, "message");
        check(
            msg.contains("Back-off pulling image") && msg.to_lowercase().contains(why),
            format!("{name}: waiting message {msg:?} does not say {why:?}"),
        )?;
        check(
            phase(&st) == "Pending",
            format!("{name}: phase {}", phase(&st)),
        )?;
        eprintln!("{name}: {msg}");
    }
    s.delete("pull.yaml");
    s.delete("missing.yaml");
    for name in ["pulled", "missing", "nocreds"] {
        wait_for(&format!("{name} gone"), Duration::from_secs(20), || {
            s.status(name).is_none()
        })?;
    }
    Ok(())
}

/// The pressure test's own API-driven agent on node-1, beside the suite's
/// static-pod agent: its own root, log, netns prefix and cgroup root, no
/// agent API port. Dropping it deletes its pods, stops it, the control
/// plane and etcd.
struct PressureAgent<'a> {
    s: &'a Suite,
    cp: ControlPlane,
    agent: Option<Daemon>,
    /// The agent reaches containerd through this, so the test can take
    /// the runtime away from it (and only from it).
    proxy: Option<SocketProxy>,
    /// The current agent's log (`logs/<name>.log`; a restart starts a
    /// new one).
    log_name: String,
    runs: u32,
}

/// A Unix socket that forwards every connection to `target`; `close`
/// drops the listener and every open connection.
struct SocketProxy {
    path: PathBuf,
    stop: Arc<std::sync::atomic::AtomicBool>,
    conns: Arc<Mutex<Vec<std::os::unix::net::UnixStream>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SocketProxy {
    fn start(path: &Path, target: &Path) -> std::io::Result<Self> {
        use std::os::unix::net::{UnixListener, UnixStream};
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<UnixStream>>> = Arc::default();
        let (stop2, conns2, target) = (stop.clone(), conns.clone(), target.to_path_buf());
        let thread = std::thread::spawn(move || {
            while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
                let Ok((down, _)) = listener.accept() else {
                    // Non-blocking accept: poll for new clients and the stop flag.
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let Ok(up) = UnixStream::connect(&target) else {
                    continue;
                };
                let _ = down.set_nonblocking(false);
                let pairs = [
                    (down.try_clone(), up.try_clone()),
                    (up.try_clone(), down.try_clone()),
                ];
                for (mut from, mut to) in pairs
                    .into_iter()
                    .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
                if let Ok(mut c) = conns2.lock() {
                    c.push(down);
                    c.push(up);
                }
            }
        });
        Ok(SocketProxy {
            path: path.to_path_buf(),
            stop,
            conns,
            thread: Some(thread),
        })
    }

    fn close(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Ok(mut c) = self.conns.lock() {
            for s in c.drain(..) {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for SocketProxy {
    fn drop(&mut self) {
        self.close();
    }
}

impl<'a> PressureAgent<'a> {
    /// etcd, capstan-control and an API-driven agent on node-1 with the
    /// common flags plus `extra` (reservations, thresholds).
    fn start(s: &'a Suite, extra: &[String]) -> Result<Self, Failed> {
        s.lab.etcd_start().map_err(|e| e.to_string())?;
        let cp = match ControlPlane::start(&s.lab) {
            Ok(cp) => cp,
            Err(e) => {
                s.lab.etcd_stop();
                return Err(e.to_string().into());
            }
        };
        let mut pa = PressureAgent {
            s,
            cp,
            agent: None,
            proxy: None,
            log_name: String::new(),
            runs: 0,
        };
        std::fs::create_dir_all(s.dir().join("pressure"))?;
        pa.proxy = Some(SocketProxy::start(
            &pa.proxy_path(),
            &s.lab.node(0).containerd_socket(),
        )?);
        pa.spawn(extra)?;
        Ok(pa)
    }

    fn proxy_path(&self) -> PathBuf {
        self.s.dir().join("pressure/containerd.sock")
    }

    fn spawn(&mut self, extra: &[String]) -> Result<(), Failed> {
        // CAPSTAN_BIN_DIR first: the target dir's agent is shared by builds.
        let agent = capstan_lab::bins::path("capstan-agent").map_err(|e| e.to_string())?;
        let s = self.s;
        let d = s.dir();
        let p = |x: &str| d.join(x).display().to_string();
        let mut args: Vec<String> = vec![
            "--components=kubelet".into(),
            format!("--node-name={NODE}"),
            format!("--node-ip={}", s.lab.node(0).ip()),
            format!("--kubeconfig={}", self.cp.node_kubeconfig(NODE).display()),
            format!("--containerd-socket={}", self.proxy_path().display()),
            "--containerd-namespace=capstan".into(),
            format!("--cni-conf-dir={}", p("etc/cni/net.d")),
            format!("--cni-bin-dir={}", p("opt/cni/bin")),
            format!("--root-dir={}", self.root().display()),
            format!("--pod-log-dir={}", p("pressure/pods")),
            "--netns-dir=/run/netns".into(),
            format!("--netns-prefix={}-prs-", s.lab.prefix()),
            format!("--cgroup-root={}", self.cgroup_root()),
            "--kubelet-port=0".into(),
        ];
        args.extend_from_slice(extra);
        self.runs += 1;
        self.log_name = format!("pressure-agent-{}", self.runs);
        self.agent = Some(
            s.lab
                .node(0)
                .spawn(&self.log_name, &agent, &args)
                .map_err(|e| e.to_string())?,
        );
        Ok(())
    }

    /// Stops the agent (its pods keep running) and starts it again with
    /// other flags.
    fn restart(&mut self, extra: &[String]) -> Result<(), Failed> {
        if let Some(mut d) = self.agent.take() {
            d.stop(Duration::from_secs(5));
        }
        self.spawn(extra)
    }

    fn apply(&self, yaml: &str) -> Result<(), Failed> {
        self.kubectl(&["apply", "-f", "-"], Some(yaml)).map(|_| ())
    }

    /// Waits until pod `name` satisfies `f`; returns the pod.
    fn wait_pod(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        f: impl Fn(&Value) -> bool,
    ) -> Result<Value, Failed> {
        let mut last = Value::Null;
        wait_for(&format!("pod {name}: {what}"), timeout, || {
            last = self.get(&["pod", name]).unwrap_or_default();
            f(&last)
        })
        .map_err(|e| {
            self.with_log(
                format!(
                    "{}\nlast: {}",
                    e.message().unwrap_or_default(),
                    last["status"]
                )
                .into(),
            )
        })?;
        Ok(last)
    }

    /// The kubelet's Event about pod `name` with `reason`.
    fn event(&self, name: &str, reason: &str) -> Option<Value> {
        let events = self.get(&["events", "-n", "default"])?;
        events["items"]
            .as_array()?
            .iter()
            .find(|e| e["involvedObject"]["name"] == name && e["reason"] == reason)
            .cloned()
    }

    fn node(&self) -> Value {
        self.get(&["node", NODE]).unwrap_or_default()
    }

    fn root(&self) -> PathBuf {
        self.s.dir().join("pressure/kubelet")
    }
    fn cgroup_root(&self) -> String {
        format!("{}/pressure", self.s.lab.cgroup_root())
    }
    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Result<String, Failed> {
        use std::io::Write;
        let mut c = self.cp.kubectl().map_err(|e| e.to_string())?;
        c.args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn()?;
        if let Some(mut w) = child.stdin.take() {
            w.write_all(stdin.unwrap_or_default().as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err(
                format!("kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into(),
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
    fn get(&self, args: &[&str]) -> Option<Value> {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.kubectl(&a, None).ok()?).ok()
    }
    fn log(&self) -> String {
        capstan_lab::daemon::log_tail(
            &self.s.dir().join(format!("logs/{}.log", self.log_name)),
            30,
        )
    }
    fn with_log(&self, e: Failed) -> Failed {
        format!(
            "{}\npressure agent log:\n{}",
            e.message().unwrap_or_default(),
            self.log()
        )
        .into()
    }
    /// Working set of the pod's memory cgroup as the agent measures it
    /// (cgroup v1's memory controller, else the unified hierarchy).
    fn pod_memory(&self, uid: &str) -> Option<i64> {
        let rel = format!("{}/pod{uid}", self.cgroup_root());
        let v1 = Path::new("/sys/fs/cgroup/memory").join(&rel);
        let (dir, usage_file, inactive_key) = if v1.is_dir() {
            (v1, "memory.usage_in_bytes", "total_inactive_file ")
        } else {
            (
                Path::new("/sys/fs/cgroup").join(&rel),
                "memory.current",
                "inactive_file ",
            )
        };
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
        let usage: i64 = read(usage_file)?.trim().parse().ok()?;
        let inactive: i64 = read("memory.stat")?
            .lines()
            .find_map(|l| l.strip_prefix(inactive_key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        Some(usage - inactive)
    }
}

impl PressureAgent<'_> {
    /// Deletes every pod and waits until the agent has torn them down
    /// (containers, sandbox, IP: the per-pod directories go last).
    fn remove_pods(&self) -> Result<(), Failed> {
        self.kubectl(
            &["delete", "pods", "--all", "-n", "default", "--wait=false"],
            None,
        )?;
        let pods = self.root().join("pods");
        wait_for(
            "pressure agent pods removed",
            Duration::from_secs(15),
            || std::fs::read_dir(&pods).is_ok_and(|d| d.count() == 0),
        )
    }
}

impl Drop for PressureAgent<'_> {
    fn drop(&mut self) {
        let _ = self.remove_pods();
        if let Some(mut d) = self.agent.take() {
            d.stop(Duration::from_secs(5));
        }
        self.proxy = None;
        self.s.lab.etcd_stop();
    }
}

fn mem_total_bytes() -> Result<i64, Failed> {
    let t = std::fs::read_to_string("/proc/meminfo")?;
    t.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<i64>().ok())
        .map(|k| k * 1024)
        .ok_or_else(|| "no MemTotal in /proc/meminfo".into())
}

/// A Kubernetes quantity in base units (cpu in millicores when `milli`).
fn quantity(q: &Value, milli: bool) -> i64 {
    let q = q.as_str().unwrap_or("");
    let split = q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len());
    let (n, suffix) = q.split_at(split);
    let n: i64 = n.parse().unwrap_or(-1);
    let scale = match (suffix, milli) {
        ("", true) => 1000,
        ("m", true) => 1,
        ("", false) => 1,
        ("Ki", false) => 1 << 10,
        ("Mi", false) => 1 << 20,
        ("Gi", false) => 1 << 30,
        ("Ti", false) => 1 << 40,
        _ => return -1,
    };
    n * scale
}

fn node_condition(node: &Value, kind: &str) -> String {
    node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == kind)
        .and_then(|c| c["status"].as_str())
        .unwrap_or("")
        .to_string()
}

fn has_taint(node: &Value, key: &str) -> bool {
    node["spec"]["taints"].as_array().is_some_and(|t| {
        t.iter()
            .any(|t| t["key"] == key && t["effect"] == "NoSchedule")
    })
}

/// A pod bound to node-1 whose container holds `mib` MiB of anonymous
/// memory: busybox dd's block buffer, kept while the write to a pipe
/// nobody reads blocks. `spec.priority` is set directly (capstan-control
/// has no PriorityClass admission; kubelet reads the field either way).
fn hog_manifest(name: &str, priority: i32, mib: u32) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: default
spec:
  nodeName: {NODE}
  priority: {priority}
  terminationGracePeriodSeconds: 1
  containers:
  - name: hog
    image: {IMAGE}
    command: ["sh", "-c", "dd if=/dev/zero bs={mib}M count=1 | sleep 3600"]
"#
    )
}

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
fn memory_pressure_eviction(s: &Suite) -> Result<(), Failed> {
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
            node_condition(&node, "MemoryPressure") == "False"
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
        node_condition(&node, "DiskPressure") == "False"
            && node_condition(&node, "PIDPressure") == "False",
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
        node_condition(
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
    wait_for("expendable pod evicted", Duration::from_secs(20), || {
        if let Some(n) = pa.get(&["node", NODE]) {
            if node_condition(&n, "MemoryPressure") == "True" {
                seen_pressure = true;
                seen_taint |= has_taint(&n, "node.kubernetes.io/memory-pressure");
            }
        }
        let p = pa.get(&["pod", "expendable"]).unwrap_or_default();
        let done = p["status"]["phase"] == "Failed" && p["status"]["reason"] == "Evicted";
        if done {
            evicted = p;
        }
        done && seen_pressure
    })
    .map_err(|e| pa.with_log(e))?;
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
            node_condition(&n, "MemoryPressure") == "False"
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

/// A pod bound to node-1 running `script`, with `extra` YAML lines
/// appended to its container (resources) and to its spec (selectors,
/// tolerations, volumes).
fn pod_manifest(name: &str, priority: i32, script: &str, container: &str, spec: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: default
spec:
  nodeName: {NODE}
  priority: {priority}
  terminationGracePeriodSeconds: 1
{spec}
  containers:
  - name: main
    image: {IMAGE}
    command: ["sh", "-c", {script:?}]
{container}
"#
    )
}

fn cpu_request(millis: i64) -> String {
    format!("    resources:\n      requests:\n        cpu: {millis}m")
}

fn pod_running(p: &Value) -> bool {
    p["status"]["phase"] == "Running"
        && p["status"]["containerStatuses"][0]["state"]["running"].is_object()
}

/// The pod was refused with `reason`, and kubelet's Event says why.
fn check_rejected(
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
fn admission_rejections(s: &Suite) -> Result<(), Failed> {
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
        node_condition(&node, "Ready") == "True"
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
        node_condition(&n, "MemoryPressure") == "True"
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

/// Tasks on the machine now (what pid.available subtracts from the limit).
fn tasks_now() -> Result<i64, Failed> {
    let t = std::fs::read_to_string("/proc/loadavg")?;
    t.split_whitespace()
        .nth(3)
        .and_then(|f| f.split_once('/'))
        .and_then(|(_, n)| n.parse().ok())
        .ok_or_else(|| format!("no task count in /proc/loadavg: {t}").into())
}

fn pid_limit() -> Result<i64, Failed> {
    let read =
        |p: &str| -> Result<i64, Failed> { Ok(std::fs::read_to_string(p)?.trim().parse::<i64>()?) };
    Ok(read("/proc/sys/kernel/pid_max")?.min(read("/proc/sys/kernel/threads-max")?))
}

fn fs_available(path: &Path) -> Result<i64, Failed> {
    let st = nix::sys::statvfs::statvfs(path).map_err(|e| e.to_string())?;
    Ok(st.blocks_available() as i64 * st.fragment_size() as i64)
}

const FORKS: i64 = 400;
const FILL_MIB: i64 = 400;

/// Disk and PID pressure from real readings, without filling the host:
/// a first agent starts `quiet`, `writer` (writes 400Mi into its emptyDir,
/// 32Mi into its writable layer)
/// and `forker` (400 sleeping processes). Then the agent restarts with
/// thresholds just above what is available now (`nodefs.available <
/// free + 200Mi`, `pid.available < free PIDs + 200`), so both pressures
/// hold until the heavy pods are gone, and clear with a 200Mi / 200-task
/// margin for the rest of the machine. The restarted agent adopts the
/// pods (under pressure it would refuse them as new), evicts the writer
/// first (disk before PIDs, most storage), removes its emptyDir, then the
/// forker (most processes), each with kubelet's message and an Event;
/// `quiet` keeps running; a new pod meanwhile is refused ("The node had
/// condition: ...").
fn disk_and_pid_eviction(s: &Suite) -> Result<(), Failed> {
    let t0 = Instant::now();
    let mut pa = PressureAgent::start(
        s,
        &[
            "--eviction-hard=memory.available<100Mi".into(),
            "--eviction-pressure-transition-period=3s".into(),
        ],
    )?;
    let empty_dir = "  volumes:\n  - name: data\n    emptyDir: {}";
    let mount = "    volumeMounts:\n    - name: data\n      mountPath: /data";
    pa.apply(&pod_manifest("quiet", 0, "sleep 3600", "", ""))?;
    pa.apply(&pod_manifest(
        "writer",
        0,
        &format!("dd if=/dev/zero of=/data/fill bs=1M count={FILL_MIB} && dd if=/dev/zero of=/tmp/layer bs=1M count=32 && sync && touch /data/done && sleep 3600"),
        mount,
        empty_dir,
    ))?;
    pa.apply(&pod_manifest(
        "forker",
        0,
        &format!("for i in $(seq {FORKS}); do sleep 3600 & done; wait"),
        "",
        "",
    ))?;
    let uid = |name: &str| -> String {
        pa.get(&["pod", name])
            .and_then(|p| p["metadata"]["uid"].as_str().map(str::to_string))
            .unwrap_or_default()
    };
    pa.wait_pod("quiet", "Running", Duration::from_secs(20), pod_running)?;
    let (writer, forker) = (uid("writer"), uid("forker"));
    let done = pa
        .root()
        .join(format!("pods/{writer}/volumes/empty-dir/data/done"));
    let procs = Path::new("/sys/fs/cgroup/pids")
        .join(pa.cgroup_root())
        .join(format!("pod{forker}/pids.current"));
    wait_for(
        "writer filled its emptyDir, forker forked",
        Duration::from_secs(30),
        || {
            done.exists()
                && std::fs::read_to_string(&procs)
                    .ok()
                    .and_then(|t| t.trim().parse::<i64>().ok())
                    .is_some_and(|n| n > FORKS)
        },
    )
    .map_err(|e| pa.with_log(e))?;

    let free = fs_available(&pa.root())?;
    let free_pids = pid_limit()? - tasks_now()?;
    pa.restart(&[
        format!(
            "--eviction-hard=memory.available<100Mi,nodefs.available<{},pid.available<{}",
            free + (200 << 20),
            free_pids + 200
        ),
        "--eviction-pressure-transition-period=3s".into(),
    ])?;
    // imagefs is containerd's snapshotter root (here on the same disk).
    let log_path = s.dir().join(format!("logs/{}.log", pa.log_name));
    wait_for(
        "imagefs = containerd's snapshotter root",
        Duration::from_secs(10),
        || {
            std::fs::read_to_string(&log_path).is_ok_and(|log| {
                log.lines().any(|l| {
                    l.contains("filesystems for eviction")
                        && l.contains("io.containerd.snapshotter.v1.overlayfs")
                })
            })
        },
    )
    .map_err(|e| pa.with_log(e))?;
    let writer_pod = pa.wait_pod("writer", "evicted", Duration::from_secs(20), |p| {
        p["status"]["phase"] == "Failed"
    })?;
    let msg = writer_pod["status"]["message"].as_str().unwrap_or("");
    check(
        writer_pod["status"]["reason"] == "Evicted"
            && msg.starts_with(
                "The node was low on resource: ephemeral-storage. Threshold quantity: ",
            )
            // Its writable layer (32Mi in /tmp) and logs: containerd's
            // snapshot usage.
            && msg.contains("Container main was using ")
            && msg.ends_with("request is 0, has larger consumption of ephemeral-storage. "),
        format!("writer: {}", writer_pod["status"]),
    )?;
    eprintln!("writer: {msg}");
    check(
        pa.event("writer", "Evicted")
            .is_some_and(|e| e["message"] == msg),
        "no Evicted event for the writer",
    )?;
    // Under pressure a new pod is refused.
    pa.apply(&pod_manifest("late", 0, "sleep 3600", &cpu_request(10), ""))?;
    let late = pa.wait_pod("late", "refused", Duration::from_secs(15), |p| {
        p["status"]["phase"] == "Failed"
    })?;
    check(
        late["status"]["reason"] == "Evicted"
            && late["status"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Pod was rejected: The node had condition: [")),
        format!("late pod: {}", late["status"]),
    )?;
    let forker_pod = pa.wait_pod("forker", "evicted", Duration::from_secs(45), |p| {
        p["status"]["phase"] == "Failed"
    })?;
    let msg = forker_pod["status"]["message"].as_str().unwrap_or("");
    check(
        forker_pod["status"]["reason"] == "Evicted"
            && msg.starts_with("The node was low on resource: pids. Threshold quantity: "),
        format!("forker: {}", forker_pod["status"]),
    )?;
    eprintln!("forker: {msg}");
    check(
        !done.exists(),
        "the evicted writer's emptyDir is still there",
    )?;
    let mut n = Value::Null;
    wait_for(
        "DiskPressure and PIDPressure False again",
        Duration::from_secs(20),
        || {
            n = pa.node();
            node_condition(&n, "DiskPressure") == "False"
                && node_condition(&n, "PIDPressure") == "False"
        },
    )
    .map_err(|e| pa.with_log(e))?;
    let quiet = pa.get(&["pod", "quiet"]).unwrap_or_default();
    check(
        pod_running(&quiet) && quiet["status"]["containerStatuses"][0]["restartCount"] == 0,
        format!("quiet pod disturbed: {}", quiet["status"]),
    )?;
    eprintln!("disk and pid eviction: {:?} in all", t0.elapsed());
    pa.remove_pods().map_err(|e| pa.with_log(e))
}
