//! The issue's end-to-end check, one shared lab: real etcd, capstan-control,
//! two nodes each with containerd and `capstan-agent --components
//! overlay,kubelet,proxy`, driven by kubectl. The seed example (NodePort
//! Service + ReplicationController serving HTTP with a liveness probe)
//! answers from the underlay; Nodes carry the overlay's podCIDR and
//! NetworkUnavailable=False; a killed container restarts with
//! restartCount 1; an agent restart leaves containers untouched and a
//! running ping loses nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use capstan_lab::control::ControlPlane;
use capstan_lab::daemon::Daemon;
use capstan_lab::{cmd, privileged, Lab};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

const IMAGE: &str = capstan_lab::image::TEST_IMAGE;
const NODE_PORT: u16 = 30080;
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
        ]
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
        t("killed_container_restarts_once", killed_container_restarts),
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
    let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
    let i = usize::from(node == s.lab.node(1).name());
    let id = container_id(pod);
    let cid = id.trim_start_matches("containerd://");
    let mut ctr = s.lab.node(i).ctr().map_err(|e| e.to_string())?;
    cmd::run(ctr.args(["tasks", "kill", "-s", "SIGKILL", cid])).map_err(|e| e.to_string())?;
    let after = wait_for(
        "restartCount 1 and Ready again",
        Duration::from_secs(30),
        || {
            s.get(&["pod", &name]).filter(|p| {
                p["status"]["containerStatuses"][0]["restartCount"] == 1
                    && condition(p, "Ready") == "True"
            })
        },
        || s.log(),
    )?;
    let last = &after["status"]["containerStatuses"][0]["lastState"]["terminated"];
    if last["exitCode"] != 137 || container_id(&after) == id {
        return Err(format!("after the kill: {}", after["status"]).into());
    }
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
    let mut ping = ping
        .args(["-i", "0.2", "-W", "1", &ip])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(600));
    for i in 0..2 {
        if let Some(mut d) = s.agents.lock().unwrap_or_else(|e| e.into_inner())[i].take() {
            d.stop(Duration::from_secs(10));
        }
        s.start_agent(i)?;
    }
    // Both agents answer again (the Node heartbeats) before the check.
    std::thread::sleep(Duration::from_millis(1500));
    let after = wait_for(
        "demo pods after restart",
        Duration::from_secs(30),
        || ready_demo_pods(s),
        || s.log(),
    )?;
    let _ = ping.kill();
    let out = ping.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let seqs: Vec<u32> = text
        .lines()
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
