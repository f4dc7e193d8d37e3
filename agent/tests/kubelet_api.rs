//! The kubelet against capstan-control: one node (own containerd,
//! capstan-cni), etcd and the API server in the lab, and `capstan-agent
//! --components kubelet --kubeconfig <node's>`. The node registers and
//! heartbeats; a pod bound to the node runs, its status is published, and
//! `kubectl delete` goes through graceful termination to the final delete.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use capstan_lab::control::ControlPlane;
use capstan_lab::daemon::Daemon;
use capstan_lab::{cmd, privileged, Lab};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

const AGENT: &str = env!("CARGO_BIN_EXE_capstan-agent");
const IMAGE: &str = "capstan.local/busybox:lab";
const NODE: &str = "node-1";

struct Suite {
    lab: Lab,
    cp: ControlPlane,
    _agent: Daemon,
}

impl Suite {
    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Result<String, Failed> {
        let mut c = self.cp.kubectl().map_err(|e| e.to_string())?;
        c.args(args);
        match stdin {
            None => cmd::stdout(&mut c).map_err(|e| e.to_string().into()),
            Some(text) => {
                use std::io::Write;
                let mut child = c
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()?;
                child
                    .stdin
                    .take()
                    .ok_or("no stdin")?
                    .write_all(text.as_bytes())?;
                let out = child.wait_with_output()?;
                if !out.status.success() {
                    return Err(format!(
                        "kubectl {args:?}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    )
                    .into());
                }
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            }
        }
    }
    fn get(&self, args: &[&str]) -> Option<Value> {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.kubectl(&a, None).ok()?).ok()
    }
    fn log(&self) -> String {
        capstan_lab::daemon::log_tail(&self.lab.node(0).dir().join("logs/kubelet.log"), 30)
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
            return Err(format!("{what}: not within {timeout:?}\nagent log:\n{}", log()).into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn main() {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    if !privileged::require(
        "kubelet_api",
        &[
            "ip",
            "etcd",
            "containerd",
            "runc",
            "ctr",
            "kubectl",
            "curl",
            "wget",
        ],
    ) {
        return;
    }
    let cni = capstan_lab::bins::path("capstan-cni")
        .unwrap_or_else(|e| panic!("{e}; build it first: cargo build -p capstan-cni"));
    let lab = Lab::builder()
        .nodes(1)
        .etcd(true)
        .containerd(true)
        .build()
        .expect("build lab");
    let cp = ControlPlane::start(&lab).expect("start capstan-control");
    let dir = lab.node(0).dir().to_path_buf();
    std::fs::copy(&cni, dir.join("opt/cni/bin/capstan")).expect("install capstan-cni");
    std::fs::write(
        dir.join("etc/cni/net.d/10-capstan.conflist"),
        serde_json::json!({
            "cniVersion": "1.0.0", "name": "capstan",
            "plugins": [{"type": "capstan", "subnet": "10.244.9.1/24", "bridge": "capstan0",
                         "dataDir": dir.join("var/lib/cni/networks/capstan")}]
        })
        .to_string(),
    )
    .expect("write conflist");
    let p = |s: &str| dir.join(s).display().to_string();
    let agent_args: Vec<String> = [
        "--components",
        "kubelet",
        "--node-name",
        NODE,
        "--kubeconfig",
        &cp.node_kubeconfig(NODE).display().to_string(),
        "--containerd-socket",
        &lab.node(0).containerd_socket().display().to_string(),
        "--containerd-namespace",
        "capstan",
        "--cni-conf-dir",
        &p("etc/cni/net.d"),
        "--cni-bin-dir",
        &p("opt/cni/bin"),
        "--root-dir",
        &p("var/lib/capstan/kubelet"),
        "--pod-log-dir",
        &p("var/log/pods"),
        "--netns-dir",
        "/run/netns",
        "--netns-prefix",
        &format!("{}-pod-", lab.prefix()),
        "--cgroup-root",
        &lab.cgroup_root(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let agent = lab
        .node(0)
        .spawn("kubelet", Path::new(AGENT), &agent_args)
        .expect("spawn agent");
    let suite = Arc::new(Suite {
        lab,
        cp,
        _agent: agent,
    });
    let t = |name: &'static str, f: fn(&Suite) -> Result<(), Failed>| {
        let s = suite.clone();
        Trial::test(name, move || f(&s))
    };
    let trials = vec![
        t("node_registers_ready_and_heartbeats", node_registers),
        t(
            "bound_pod_runs_status_published_then_graceful_delete",
            api_pod_lifecycle,
        ),
    ];
    let conclusion = libtest_mimic::run(&args, trials);
    drop(suite);
    conclusion.exit();
}

fn node_registers(s: &Suite) -> Result<(), Failed> {
    let node = wait_for(
        "node Ready",
        Duration::from_secs(20),
        || {
            s.get(&["node", NODE]).filter(|n| {
                n["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
        },
        || s.log(),
    )?;
    let addr = &node["status"]["addresses"][0];
    if addr["type"] != "InternalIP" || addr["address"] != "192.168.250.11" {
        return Err(format!("addresses {}", node["status"]["addresses"]).into());
    }
    if node["metadata"]["labels"]["kubernetes.io/hostname"] != NODE {
        return Err(format!("labels {}", node["metadata"]["labels"]).into());
    }
    // The heartbeat Lease (its namespace made by the admin, as on a real cluster).
    let _ = s.kubectl(&["create", "namespace", "kube-node-lease"], None);
    wait_for(
        "node lease",
        Duration::from_secs(20),
        || {
            s.get(&["lease", "-n", "kube-node-lease", NODE])
                .filter(|l| {
                    l["spec"]["holderIdentity"] == NODE && l["spec"]["renewTime"].is_string()
                })
        },
        || s.log(),
    )?;
    Ok(())
}

fn api_pod_lifecycle(s: &Suite) -> Result<(), Failed> {
    s.kubectl(
        &["apply", "-f", "-"],
        Some(&format!(
            r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: web-config, namespace: default}}
data: {{greeting: hello-from-api}}
---
apiVersion: v1
kind: Pod
metadata: {{name: apiweb, namespace: default}}
spec:
  nodeName: {NODE}
  terminationGracePeriodSeconds: 5
  containers:
  - name: web
    image: {IMAGE}
    command: ["sh", "-c", "echo $GREETING; exec /bin/capstan-testsrv serve --http 0.0.0.0:8080"]
    env:
    - {{name: GREETING, valueFrom: {{configMapKeyRef: {{name: web-config, key: greeting}}}}}}
    readinessProbe:
      tcpSocket: {{port: 8080}}
      periodSeconds: 1
"#
        )),
    )?;
    let pod = wait_for(
        "pod Running and Ready in the API",
        Duration::from_secs(30),
        || {
            s.get(&["pod", "apiweb"]).filter(|p| {
                p["status"]["phase"] == "Running"
                    && p["status"]["conditions"].as_array().is_some_and(|c| {
                        c.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
            })
        },
        || {
            let file = s
                .lab
                .node(0)
                .dir()
                .join("var/lib/capstan/kubelet/pod-status/default_apiweb.json");
            format!(
                "{}\nAPI status: {}\nstatus file: {}",
                s.log(),
                s.get(&["pod", "apiweb"])
                    .map(|p| p["status"].to_string())
                    .unwrap_or_default(),
                std::fs::read_to_string(file).unwrap_or_default()
            )
        },
    )?;
    let ip = pod["status"]["podIP"]
        .as_str()
        .ok_or("no podIP")?
        .to_string();
    if !ip.starts_with("10.244.9.") || pod["status"]["hostIP"] != "192.168.250.11" {
        return Err(format!("status {}", pod["status"]).into());
    }
    let mut wget = s.lab.node(0).command("wget").map_err(|e| e.to_string())?;
    let body = cmd::stdout(wget.args(["-q", "-T", "2", "-O", "-", &format!("http://{ip}:8080/")]))
        .map_err(|e| e.to_string())?;
    if body.trim() != "apiweb" {
        return Err(format!("GET / answered {body:?}").into());
    }
    let uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let log = s
        .lab
        .node(0)
        .dir()
        .join(format!("var/log/pods/default_apiweb_{uid}/web/0.log"));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    if !text.contains(" stdout F hello-from-api") {
        return Err(format!("configMapKeyRef env not seen in log {text:?}").into());
    }
    // Graceful deletion: the kubelet stops the pod, then deletes it for good.
    s.kubectl(&["delete", "pod", "apiweb", "--wait=false"], None)?;
    wait_for(
        "pod gone from the API",
        Duration::from_secs(20),
        || s.get(&["pod", "apiweb"]).is_none().then_some(()),
        || s.log(),
    )?;
    let mut ctr = s.lab.node(0).ctr().map_err(|e| e.to_string())?;
    let left = cmd::stdout(ctr.args([
        "containers",
        "ls",
        "-q",
        &format!("labels.\"io.kubernetes.pod.uid\"=={uid}"),
    ]))
    .map_err(|e| e.to_string())?;
    if !left.trim().is_empty() {
        return Err(format!("containers left: {left}").into());
    }
    Ok(())
}
