//! The issue's end-to-end check, one shared lab: real etcd, capstan-control,
//! two nodes each with containerd and `capstan-agent --components
//! overlay,kubelet,proxy`, driven by kubectl. The seed example (NodePort
//! Service + ReplicationController serving HTTP with a liveness probe)
//! answers from the underlay; Nodes carry the overlay's podCIDR and
//! NetworkUnavailable=False; a killed container restarts with
//! restartCount 1, a second kill waits out the CrashLoopBackOff; a
//! failing liveness probe restarts its container; `kubectl logs -f` streams
//! what a container prints after it started and `--previous` shows the
//! attempt before a restart; an image pulls from the lab's registry with an
//! imagePullSecret and a missing one ends in ImagePullBackOff; an agent
//! restart leaves containers untouched and a running ping loses nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use capstan_lab::control::ControlPlane;
use capstan_lab::daemon::Daemon;
use capstan_lab::{cmd, privileged, Lab};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

const IMAGE: &str = capstan_lab::image::TEST_IMAGE;
const NODE_PORT: u16 = 30080;
/// The lab registry listens on node-1's underlay address at this port.
const REGISTRY_PORT: u16 = 5000;
const NETWORK_CONFIG: &str =
    r#"{"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan","VNI":1,"Port":8472}}"#;

struct Suite {
    lab: Lab,
    cp: ControlPlane,
    agents: std::sync::Mutex<Vec<Option<Daemon>>>,
}

impl Suite {
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
        (0..2)
            .map(|i| {
                format!(
                    "node-{} agent:\n{}",
                    i + 1,
                    capstan_lab::daemon::log_tail(
                        &self.lab.node(i).dir().join("logs/agent.log"),
                        15
                    )
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
    fn agent_args(&self, i: usize) -> Vec<String> {
        let n = self.lab.node(i);
        let d = n.dir();
        let p = |s: &str| d.join(s).display().to_string();
        vec![
            "--components=overlay,kubelet,proxy".into(),
            format!("--node-name={}", n.name()),
            format!("--node-ip={}", n.ip()),
            format!("--etcd-endpoints={}", self.lab.etcd_endpoint()),
            "--iface=eth0".into(),
            format!("--subnet-file={}", p("run/capstan/subnet.env")),
            format!(
                "--kubeconfig={}",
                self.cp.node_kubeconfig(n.name()).display()
            ),
            format!("--containerd-socket={}", n.containerd_socket().display()),
            "--containerd-namespace=capstan".into(),
            format!("--cni-conf-dir={}", p("etc/cni/net.d")),
            format!("--cni-bin-dir={}", p("opt/cni/bin")),
            format!("--root-dir={}", p("var/lib/capstan/kubelet")),
            format!("--pod-log-dir={}", p("var/log/pods")),
            "--netns-dir=/run/netns".into(),
            format!("--netns-prefix={}-{}-pod-", self.lab.prefix(), n.name()),
            format!("--cgroup-root={}", self.lab.cgroup_root()),
            "--cluster-cidr=10.244.0.0/16".into(),
            format!("--client-ca-file={}", self.cp.ca_cert().display()),
            // The lab's registry (registry_pulls) speaks plain HTTP.
            format!("--insecure-registry={}", self.registry_host()),
        ]
    }
    fn registry_host(&self) -> String {
        format!("{}:{REGISTRY_PORT}", self.lab.node(0).ip())
    }
    /// `kubectl ARGS` as a long-running child (`logs -f`, `get -w`).
    fn kubectl_child(&self, args: &[&str]) -> Result<std::process::Child, Failed> {
        let mut c = self.cp.kubectl().map_err(|e| e.to_string())?;
        Ok(c.args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?)
    }
    fn start_agent(&self, i: usize) -> Result<(), Failed> {
        let bin = capstan_lab::bins::path("capstan-agent").map_err(|e| e.to_string())?;
        let d = self
            .lab
            .node(i)
            .spawn("agent", &bin, &self.agent_args(i))
            .map_err(|e| e.to_string())?;
        let mut agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        agents.resize_with(2, || None);
        agents[i] = Some(d);
        Ok(())
    }
}

fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
    log: impl Fn() -> String,
) -> Result<T, Failed> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() > end {
            return Err(format!("{what}: not within {timeout:?}\n{}", log()).into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn main() {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    if !privileged::require(
        "kubelet_e2e",
        &[
            "ip",
            "etcd",
            "etcdctl",
            "containerd",
            "runc",
            "ctr",
            "kubectl",
            "curl",
            "nft",
            "ping",
            "docker-registry",
            "skopeo",
        ],
    ) {
        return;
    }
    let cni = capstan_lab::bins::path("capstan-cni")
        .unwrap_or_else(|e| panic!("{e}; build it first: cargo build -p capstan-cni"));
    let lab = Lab::builder()
        .nodes(2)
        .etcd(true)
        .containerd(true)
        .build()
        .expect("build lab");
    let cp = ControlPlane::start(&lab).expect("start capstan-control");
    cmd::run(
        lab.node(0)
            .command("etcdctl")
            .expect("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", lab.etcd_endpoint()))
            .args(["put", "/capstan/network/config", NETWORK_CONFIG]),
    )
    .expect("network config into etcd");
    for i in 0..2 {
        let dir = lab.node(i).dir().to_path_buf();
        std::fs::copy(&cni, dir.join("opt/cni/bin/capstan")).expect("install capstan-cni");
        std::fs::write(
            dir.join("etc/cni/net.d/10-capstan.conflist"),
            serde_json::json!({
                "cniVersion": "1.0.0", "name": "capstan",
                "plugins": [{"type": "capstan", "subnetFile": dir.join("run/capstan/subnet.env"),
                             "dataDir": dir.join("var/lib/cni/networks/capstan"), "hairpinMode": true}]
            })
            .to_string(),
        )
        .expect("write conflist");
    }
    let suite = Arc::new(Suite {
        lab,
        cp,
        agents: std::sync::Mutex::new(Vec::new()),
    });
    for i in 0..2 {
        suite.start_agent(i).expect("start agent");
    }
    let t = |name: &'static str, f: fn(&Suite) -> Result<(), Failed>| {
        let s = suite.clone();
        Trial::test(name, move || f(&s))
    };
    let trials = vec![
        t("nodes_ready_with_overlay_pod_cidr", nodes_ready),
        t("seed_example_answers_on_the_node_port", seed_example),
        t(
            "killed_container_restarts_once_then_backs_off",
            killed_container_restarts,
        ),
        t(
            "failing_liveness_probe_restarts_the_container",
            liveness_restarts,
        ),
        t(
            "kubectl_logs_follow_streams_and_previous_shows_the_last_attempt",
            logs_follow,
        ),
        t(
            "registry_pull_with_pull_secret_then_image_pull_backoff",
            registry_pulls,
        ),
        t(
            "invalid_image_name_waits_with_kubelets_message_and_never_pulls",
            invalid_image_name,
        ),
        t(
            "agent_restart_leaves_containers_and_traffic_alone",
            agent_restart,
        ),
        t(
            "readiness_toggles_endpoints_then_delete_runs_prestop_and_sigterm",
            readiness_and_delete,
        ),
    ];
    let conclusion = libtest_mimic::run(&args, trials);
    drop(suite);
    conclusion.exit();
}

fn condition<'a>(obj: &'a Value, kind: &str) -> &'a Value {
    obj["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == kind))
        .map_or(&Value::Null, |c| &c["status"])
}

fn subnet_of(s: &Suite, i: usize) -> Option<String> {
    let text = std::fs::read_to_string(s.lab.node(i).dir().join("run/capstan/subnet.env")).ok()?;
    let v = text
        .lines()
        .find_map(|l| l.strip_prefix("CAPSTAN_SUBNET="))?;
    let n: ipnetwork::Ipv4Network = v.trim().parse().ok()?;
    Some(format!("{}/{}", n.network(), n.prefix()))
}

fn nodes_ready(s: &Suite) -> Result<(), Failed> {
    for i in 0..2 {
        let name = s.lab.node(i).name().to_string();
        let subnet = wait_for(
            "overlay subnet",
            Duration::from_secs(30),
            || subnet_of(s, i),
            || s.log(),
        )?;
        wait_for(
            "node Ready, podCIDR from the overlay, NetworkUnavailable=False",
            Duration::from_secs(30),
            || {
                s.get(&["node", &name]).filter(|n| {
                    condition(n, "Ready") == "True"
                        && condition(n, "NetworkUnavailable") == "False"
                        && n["spec"]["podCIDR"] == subnet.as_str()
                        && n["spec"]["podCIDRs"][0] == subnet.as_str()
                })
            },
            || format!("{}\nnode: {:?}", s.log(), s.get(&["node", &name])),
        )?;
    }
    Ok(())
}

const SEED: &str = r#"apiVersion: v1
kind: Service
metadata: {name: demo, namespace: default}
spec:
  type: NodePort
  selector: {app: demo}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
---
apiVersion: v1
kind: ReplicationController
metadata: {name: demo, namespace: default}
spec:
  replicas: 2
  selector: {app: demo}
  template:
    metadata: {labels: {app: demo}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        image: IMAGE
        command: ["/bin/capstan-testsrv", "serve", "--http", "0.0.0.0:8080"]
        ports: [{containerPort: 8080}]
        livenessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 5}
        readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
"#;

fn ready_demo_pods(s: &Suite) -> Option<Vec<Value>> {
    let list = s.get(&["pods", "-l", "app=demo"])?;
    let pods: Vec<Value> = list["items"].as_array()?.clone();
    (pods.len() == 2
        && pods
            .iter()
            .all(|p| condition(p, "Ready") == "True" && p["status"]["podIP"].is_string()))
    .then_some(pods)
}

fn seed_example(s: &Suite) -> Result<(), Failed> {
    s.kubectl(
        &["apply", "--validate=false", "-f", "-"],
        Some(&SEED.replace("IMAGE", IMAGE)),
    )?;
    let t0 = Instant::now();
    wait_for(
        "2 demo pods Ready",
        Duration::from_secs(40),
        || ready_demo_pods(s),
        || s.log(),
    )?;
    eprintln!(
        "seed example: RC applied → 2 pods Ready in {:?}",
        t0.elapsed()
    );
    for i in 0..2 {
        let url = format!("http://{}:{NODE_PORT}/", s.lab.node(i).ip());
        let answer = wait_for(
            "an answer on the node port",
            Duration::from_secs(15),
            || {
                let mut c = s.cp.command("curl").ok()?;
                c.args(["-sf", "--max-time", "2", &url]);
                cmd::stdout(&mut c).ok().filter(|a| a.starts_with("demo-"))
            },
            || s.log(),
        )?;
        eprintln!("curl {url} from the underlay: {}", answer.trim());
    }
    Ok(())
}

fn container_id(pod: &Value) -> String {
    pod["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn node_index(s: &Suite, pod: &Value) -> usize {
    usize::from(pod["spec"]["nodeName"] == s.lab.node(1).name())
}

/// SIGKILL to a container's task, behind the kubelet's back.
fn kill_container(s: &Suite, node: usize, pod: &Value) -> Result<(), Failed> {
    let id = container_id(pod);
    let cid = id.trim_start_matches("containerd://");
    let mut ctr = s.lab.node(node).ctr().map_err(|e| e.to_string())?;
    cmd::run(ctr.args(["tasks", "kill", "-s", "SIGKILL", cid])).map_err(|e| e.to_string())?;
    Ok(())
}

fn timestamp(v: &Value) -> Option<jiff::Timestamp> {
    v.as_str()?.parse().ok()
}

/// The first restart is immediate; a second exit soon after waits out
/// kubelet's 10 s back-off, shown as CrashLoopBackOff meanwhile.
fn killed_container_restarts(s: &Suite) -> Result<(), Failed> {
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

fn agent_restart(s: &Suite) -> Result<(), Failed> {
    let before = wait_for(
        "demo pods",
        Duration::from_secs(30),
        || ready_demo_pods(s),
        || s.log(),
    )?;
    let pod_on_1 = before
        .iter()
        .find(|p| p["spec"]["nodeName"] == s.lab.node(1).name())
        .or(before.first())
        .ok_or("no pod")?;
    let ip = pod_on_1["status"]["podIP"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // Ping the pod from the other node (across the overlay) while both
    // agents restart.
    let mut ping = s.lab.node(0).command("ping").map_err(|e| e.to_string())?;
    let ping = ping
        .args(["-i", "0.2", "-W", "1", &ip])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut ping = Stream::start(ping, lines)?;
    let wait_replies = |ping: &mut Stream<String>, n: usize| -> Result<(), Failed> {
        let want = ping.seen.iter().filter(|l| l.contains("icmp_seq=")).count() + n;
        let mut got = ping.seen.iter().filter(|l| l.contains("icmp_seq=")).count();
        while got < want {
            match ping.until(Duration::from_secs(5), |l| l.contains("icmp_seq=")) {
                Ok(_) => got += 1,
                Err(_) => return Err(format!("ping: no reply; got {:?}", ping.seen).into()),
            }
        }
        Ok(())
    };
    wait_replies(&mut ping, 3)?;
    let logs: Vec<std::path::PathBuf> = (0..2)
        .map(|i| s.lab.node(i).dir().join("logs/agent.log"))
        .collect();
    let offsets: Vec<usize> = logs
        .iter()
        .map(|l| std::fs::read(l).map_or(0, |b| b.len()))
        .collect();
    for i in 0..2 {
        if let Some(mut d) = s.agents.lock().unwrap_or_else(|e| e.into_inner())[i].take() {
            d.stop(Duration::from_secs(10));
        }
        s.start_agent(i)?;
    }
    // Each new agent has taken over its node's demo containers (its log
    // says so per pod) before the check, and pings still answer after.
    for pod in &before {
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let i = node_index(s, pod);
        wait_for(
            &format!("agent {} adopting {name}", i + 1),
            Duration::from_secs(30),
            || {
                let text = std::fs::read(&logs[i]).ok()?;
                let new = String::from_utf8_lossy(text.get(offsets[i]..)?).into_owned();
                new.lines()
                    .any(|l| l.contains("adopted running container") && l.contains(name))
                    .then_some(())
            },
            || s.log(),
        )?;
    }
    let after = wait_for(
        "demo pods after restart",
        Duration::from_secs(30),
        || ready_demo_pods(s),
        || s.log(),
    )?;
    wait_replies(&mut ping, 3)?;
    let _ = ping.child.kill();
    let _ = ping.until(Duration::from_secs(5), |_| false);
    let seqs: Vec<u32> = ping
        .seen
        .iter()
        .filter_map(|l| l.split("icmp_seq=").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    let max = seqs.iter().copied().max().unwrap_or(0);
    if seqs.len() < 5 || seqs.len() as u32 != max {
        return Err(format!("ping lost replies across the agent restarts: {seqs:?}").into());
    }
    let ids = |pods: &[Value]| {
        let mut v: Vec<(String, String, Value)> = pods
            .iter()
            .map(|p| {
                (
                    p["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    container_id(p),
                    p["status"]["containerStatuses"][0]["restartCount"].clone(),
                )
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    if ids(&before) != ids(&after) {
        return Err(format!(
            "containers changed across the agent restart: {:?} → {:?}",
            ids(&before),
            ids(&after)
        )
        .into());
    }
    eprintln!(
        "agent restarts: {} pings, none lost; container IDs unchanged",
        seqs.len()
    );
    Ok(())
}

fn endpoint_ips(s: &Suite) -> Vec<String> {
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
fn readiness_and_delete(s: &Suite) -> Result<(), Failed> {
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

/// Lines (or JSON objects) a long-running kubectl prints, read on a thread
/// so a test waits for the next one with a deadline; the child is killed on
/// drop.
struct Stream<T> {
    child: std::process::Child,
    rx: std::sync::mpsc::Receiver<T>,
    seen: Vec<T>,
}

impl<T: Clone + Send + 'static> Stream<T> {
    fn start(
        mut child: std::process::Child,
        read: impl FnOnce(std::process::ChildStdout, std::sync::mpsc::Sender<T>) + Send + 'static,
    ) -> Result<Self, Failed> {
        let out = child.stdout.take().ok_or("kubectl without stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || read(out, tx));
        Ok(Self {
            child,
            rx,
            seen: Vec::new(),
        })
    }

    /// Waits for an item `f` accepts; Err(true) when the stream ended
    /// first, Err(false) at the deadline.
    fn until(&mut self, timeout: Duration, f: impl Fn(&T) -> bool) -> Result<T, bool> {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(v) => {
                    let hit = f(&v);
                    self.seen.push(v.clone());
                    if hit {
                        return Ok(v);
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => return Err(false),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Err(true),
            }
        }
    }

    fn stderr(&mut self) -> String {
        let _ = self.child.kill();
        let mut text = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut text);
        }
        text
    }
}

impl<T> Drop for Stream<T> {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines(out: std::process::ChildStdout, tx: std::sync::mpsc::Sender<String>) {
    use std::io::BufRead;
    for line in std::io::BufReader::new(out).lines() {
        let Ok(line) = line else { return };
        if tx.send(line).is_err() {
            return;
        }
    }
}

fn json_objects(out: std::process::ChildStdout, tx: std::sync::mpsc::Sender<Value>) {
    for v in serde_json::Deserializer::from_reader(out).into_iter::<Value>() {
        let Ok(v) = v else { return };
        if tx.send(v).is_err() {
            return;
        }
    }
}

/// A hostPath directory in node `i`'s lab directory, for files a test and
/// a container hand each other.
fn shared_dir(s: &Suite, i: usize, name: &str) -> Result<std::path::PathBuf, Failed> {
    let dir = s.lab.node(i).dir().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Drops a file the container polls for, whole (written, then renamed).
fn hand_over(dir: &std::path::Path, name: &str, text: &str) -> Result<(), Failed> {
    let tmp = dir.join(format!(".{name}"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, dir.join(name))?;
    Ok(())
}

/// The kubelet's Events about `pod` once every `(reason, text in the
/// message)` of `want` is among them.
fn events_for(s: &Suite, pod: &str, want: &[(&str, &str)]) -> Result<Vec<Value>, Failed> {
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

fn delete_pod(s: &Suite, name: &str) -> Result<(), Failed> {
    s.kubectl(&["delete", "pod", name, "--wait=false"], None)?;
    wait_for(
        &format!("{name} gone"),
        Duration::from_secs(20),
        || s.get(&["pod", name]).is_none().then_some(()),
        || s.log(),
    )
}

/// The container turns unhealthy by itself once told to (it removes the
/// file its exec liveness probe tests, once); the kubelet kills it (grace
/// 1 s; sh as PID 1 ignores SIGTERM, so SIGKILL: 137) and starts a new
/// attempt, which is healthy again. Nothing else ends this container.
fn liveness_restarts(s: &Suite) -> Result<(), Failed> {
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

/// An image reference that does not parse: kubelet's `InvalidImageName`
/// with its message and Events, and no pull (no ErrImagePull at any point
/// of a watch that began before the pod existed).
fn invalid_image_name(s: &Suite) -> Result<(), Failed> {
    let node = s.lab.node(1).name().to_string();
    let image = "Bad_Image::x";
    let want = format!(
        "Failed to apply default image tag {image:?}: couldn't parse image reference \
         {image:?}: invalid reference format: repository name (library/Bad_Image) must be lowercase"
    );
    let mut watch = Stream::start(
        s.kubectl_child(&["get", "pods", "-l", "bad=name", "-o", "json", "-w"])?,
        json_objects,
    )?;
    s.kubectl(
        &["apply", "--validate=false", "-f", "-"],
        Some(&format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: badname, namespace: default, labels: {{bad: name}}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: "{image}"
"#
        )),
    )?;
    let waiting = |p: &Value, field: &str| {
        p["status"]["containerStatuses"][0]["state"]["waiting"][field]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let st = match watch.until(Duration::from_secs(20), |p| {
        waiting(p, "reason") == "InvalidImageName"
    }) {
        Ok(p) => p,
        Err(ended) => {
            let stderr = watch.stderr();
            return Err(format!(
                "badname: no InvalidImageName (ended: {ended}): {stderr}\n{}",
                s.log()
            )
            .into());
        }
    };
    let reasons: Vec<String> = watch.seen.iter().map(|p| waiting(p, "reason")).collect();
    drop(watch);
    let c = &st["status"]["containerStatuses"][0];
    if waiting(&st, "message") != want
        || reasons
            .iter()
            .any(|r| !r.is_empty() && r != "InvalidImageName")
        || c["restartCount"] != 0
        || st["status"]["phase"] != "Pending"
    {
        return Err(format!("badname: reasons {reasons:?}, status {}", st["status"]).into());
    }
    events_for(
        s,
        "badname",
        &[
            ("InspectFailed", &want),
            ("Failed", "Error: InvalidImageName"),
        ],
    )?;
    eprintln!("invalid image: reasons {reasons:?}: {want}");
    delete_pod(s, "badname")
}

/// `kubectl logs -f` (capstan-control → the agent's API on :10250) shows a
/// line the container prints only after the stream began, and ends when
/// the container exits; after the restart `--previous` shows that attempt.
fn logs_follow(s: &Suite) -> Result<(), Failed> {
    let dir = shared_dir(s, 0, "chatty")?;
    let node = s.lab.node(0).name().to_string();
    s.kubectl(
        &["apply", "--validate=false", "-f", "-"],
        Some(&format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: chatty, namespace: default}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  volumes: [{{name: t, hostPath: {{path: {dir}}}}}]
  containers:
  - name: main
    image: {IMAGE}
    volumeMounts: [{{name: t, mountPath: /t}}]
    command:
    - sh
    - -c
    - |
      echo started
      while true; do
        if [ -f /t/say ]; then cat /t/say; rm -f /t/say; fi
        if [ -f /t/quit ]; then rm -f /t/quit; echo bye; exit 3; fi
        sleep 0.1
      done
"#,
            dir = dir.display()
        )),
    )?;
    wait_for(
        "chatty Running",
        Duration::from_secs(30),
        || {
            s.get(&["pod", "chatty"])
                .filter(|p| p["status"]["containerStatuses"][0]["state"]["running"].is_object())
        },
        || s.log(),
    )?;
    let mut follow = Stream::start(s.kubectl_child(&["logs", "-f", "chatty"])?, lines)?;
    if let Err(ended) = follow.until(Duration::from_secs(15), |l| l == "started") {
        let stderr = follow.stderr();
        return Err(format!(
            "logs -f: no \"started\" (ended: {ended}; got {:?}): {stderr}\n{}",
            follow.seen,
            s.log()
        )
        .into());
    }
    let word = format!("said-after-the-stream-began-{}", std::process::id());
    hand_over(&dir, "say", &format!("{word}\n"))?;
    let t0 = Instant::now();
    if let Err(ended) = follow.until(Duration::from_secs(10), |l| *l == word) {
        let stderr = follow.stderr();
        return Err(format!(
            "logs -f: {word:?} did not arrive (ended: {ended}; got {:?}): {stderr}",
            follow.seen
        )
        .into());
    }
    let latency = t0.elapsed();
    hand_over(&dir, "quit", "")?;
    // The container's exit ends the stream, as kubelet's follow does.
    match follow.until(Duration::from_secs(15), |_| false) {
        Err(true) => {}
        _ => {
            return Err(format!(
                "logs -f did not end after the container exited; got {:?}",
                follow.seen
            )
            .into())
        }
    }
    if follow.seen.last().map(String::as_str) != Some("bye") {
        return Err(format!("logs -f: last line not \"bye\": {:?}", follow.seen).into());
    }
    drop(follow);
    wait_for(
        "chatty restarted",
        Duration::from_secs(30),
        || {
            s.get(&["pod", "chatty"]).filter(|p| {
                p["status"]["containerStatuses"][0]["restartCount"] == 1
                    && p["status"]["containerStatuses"][0]["state"]["running"].is_object()
            })
        },
        || s.log(),
    )?;
    let previous = s.kubectl(&["logs", "chatty", "--previous"], None)?;
    let want = format!("started\n{word}\nbye\n");
    if previous != want {
        return Err(format!("logs --previous: {previous:?}, want {want:?}").into());
    }
    let current = s.kubectl(&["logs", "chatty"], None)?;
    if current != "started\n" {
        return Err(format!("logs after the restart: {current:?}").into());
    }
    eprintln!("logs -f: a new line arrived {latency:?} after it was written");
    delete_pod(s, "chatty")?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The lab's registry (on node-1's underlay address, basic auth): a pod on
/// node-2 whose image is only there runs with a `kubectl create secret
/// docker-registry` pull secret; a missing tag goes ErrImagePull →
/// ImagePullBackOff with the registry's reason, as `kubectl get -w` sees.
fn registry_pulls(s: &Suite) -> Result<(), Failed> {
    let registry_node = s.lab.node(0);
    let node = s.lab.node(1).name().to_string();
    let password = format!("pw-{}", std::process::id());
    let hash = bcrypt::hash(&password, 4).map_err(|e| e.to_string())?;
    let registry = capstan_lab::registry::Registry::start_at(
        &registry_node,
        registry_node.ip(),
        REGISTRY_PORT,
        Some(&format!("lab:{hash}\n")),
    )
    .map_err(|e| e.to_string())?;
    if registry.host != s.registry_host() {
        return Err(format!(
            "registry at {}, agents told {}",
            registry.host,
            s.registry_host()
        )
        .into());
    }
    let archive = capstan_lab::registry::test_image_archive().map_err(|e| e.to_string())?;
    let image = registry
        .push(
            &registry_node,
            &archive,
            "capstan/pulled:v1",
            Some(("lab", &password)),
        )
        .map_err(|e| e.to_string())?;
    s.kubectl(
        &[
            "create",
            "secret",
            "docker-registry",
            "regcred",
            &format!("--docker-server={}", registry.host),
            "--docker-username=lab",
            &format!("--docker-password={password}"),
        ],
        None,
    )?;
    let pod = |name: &str, image: &str| {
        format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: default, labels: {{pull: lab}}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  imagePullSecrets: [{{name: regcred}}]
  containers:
  - name: main
    image: {image}
    command: ["sleep", "3600"]
"#
        )
    };
    let t0 = Instant::now();
    s.kubectl(
        &["apply", "--validate=false", "-f", "-"],
        Some(&pod("pulled", &image)),
    )?;
    let st = wait_for(
        "pulled Running",
        Duration::from_secs(60),
        || {
            s.get(&["pod", "pulled"])
                .filter(|p| p["status"]["containerStatuses"][0]["state"]["running"].is_object())
        },
        || format!("{}\npod: {:?}", s.log(), s.get(&["pod", "pulled"])),
    )?;
    let pulled_in = t0.elapsed();
    let c = &st["status"]["containerStatuses"][0];
    if c["image"] != image.as_str()
        || !c["imageID"]
            .as_str()
            .is_some_and(|i| i.contains("@sha256:"))
    {
        return Err(format!("pulled: {c}").into());
    }
    let mut ctr = s.lab.node(1).ctr().map_err(|e| e.to_string())?;
    let images = cmd::stdout(ctr.args(["images", "ls", "-q"])).map_err(|e| e.to_string())?;
    if !images.lines().any(|l| l == image) {
        return Err(format!("{image} not in node-2's containerd: {images}").into());
    }

    // Watched from before it exists (ErrImagePull lasts one 2 s retry):
    // once the watch printed `pulled`, its list is done and every later
    // change arrives.
    let mut watch = Stream::start(
        s.kubectl_child(&["get", "pods", "-l", "pull=lab", "-o", "json", "-w"])?,
        json_objects,
    )?;
    if let Err(ended) = watch.until(Duration::from_secs(15), |p| {
        p["metadata"]["name"] == "pulled"
    }) {
        let stderr = watch.stderr();
        return Err(format!("get -w: no pulled (ended: {ended}): {stderr}").into());
    }
    let missing = format!("{}/capstan/missing:v1", registry.host);
    s.kubectl(
        &["apply", "--validate=false", "-f", "-"],
        Some(&pod("badref", &missing)),
    )?;
    let waiting = |p: &Value, field: &str| {
        p["status"]["containerStatuses"][0]["state"]["waiting"][field]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let badref = |p: &&Value| p["metadata"]["name"] == "badref";
    let reasons = |seen: &[Value]| {
        let mut r: Vec<String> = seen
            .iter()
            .filter(badref)
            .map(|p| waiting(p, "reason"))
            .collect();
        r.dedup();
        r
    };
    let backoff = match watch.until(Duration::from_secs(30), |p| {
        badref(&p) && waiting(p, "reason") == "ImagePullBackOff"
    }) {
        Ok(p) => p,
        Err(ended) => {
            let stderr = watch.stderr();
            return Err(format!(
                "badref: no ImagePullBackOff (watch ended: {ended}); reasons {:?}: {stderr}\n{}",
                reasons(&watch.seen),
                s.log()
            )
            .into());
        }
    };
    let seen = reasons(&watch.seen);
    let msg = waiting(&backoff, "message");
    let pull_error = watch
        .seen
        .iter()
        .filter(badref)
        .find(|p| waiting(p, "reason") == "ErrImagePull")
        .map(|p| waiting(p, "message"));
    // ErrImagePull came first: the watch stopped at ImagePullBackOff.
    if !pull_error
        .as_deref()
        .is_some_and(|m| m.to_lowercase().contains("manifest unknown"))
        || !msg.contains("Back-off pulling image")
        || !msg.contains(&missing)
        || !msg.to_lowercase().contains("manifest unknown")
        || backoff["status"]["phase"] != "Pending"
    {
        return Err(format!(
            "badref: reasons {seen:?}, ErrImagePull message {pull_error:?}, back-off message {msg:?}, phase {}",
            backoff["status"]["phase"]
        )
        .into());
    }
    drop(watch);
    events_for(
        s,
        "badref",
        &[
            ("Failed", "manifest unknown"),
            ("BackOff", "Back-off pulling image"),
        ],
    )?;
    eprintln!("registry: pulled and Running in {pulled_in:?}; bad reference: {seen:?}: {msg}");
    for name in ["pulled", "badref"] {
        delete_pod(s, name)?;
    }
    s.kubectl(&["delete", "secret", "regcred"], None)?;
    Ok(())
}
