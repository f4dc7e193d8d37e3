//! The kubelet against capstan-control: one node (own containerd,
//! capstan-cni), etcd and the API server in the lab, and `capstan-agent
//! --components kubelet --kubeconfig <node's>`. The node registers and
//! heartbeats; a pod bound to the node runs, its status is published, and
//! `kubectl delete` goes through graceful termination to the final delete.
//! `kubectl logs` (plain, --tail, --timestamps, -f, --previous) goes
//! through the API server to the agent's HTTPS API on :10250, which
//! refuses requests without a client certificate from the cluster CA.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use capstan_lab::cmd;
use capstan_lab::daemon::Daemon;
use kube_suite::{lines, wait_for, Case, Cluster, Stream};
use libtest_mimic::{Arguments, Failed};

mod kube_suite;

const IMAGE: &str = "capstan.local/busybox:lab";
const NODE: &str = "node-1";

struct Suite {
    c: Cluster,
    _agent: Daemon,
}

/// The suite is its cluster plus the agent: `s.lab`, `s.kubectl(..)`.
impl std::ops::Deref for Suite {
    type Target = Cluster;
    fn deref(&self) -> &Cluster {
        &self.c
    }
}

impl Suite {
    fn log(&self) -> String {
        let tail =
            capstan_lab::daemon::log_tail(&self.lab.node(0).dir().join("logs/kubelet.log"), 30);
        format!("agent log:\n{tail}")
    }
}

fn main() {
    let args = Arguments::from_args();
    let tools = [
        "ip",
        "etcd",
        "containerd",
        "runc",
        "ctr",
        "kubectl",
        "curl",
        "wget",
    ];
    let Some(c) = Cluster::start("kubelet_api", &tools, 1, |dir| {
        serde_json::json!({"type": "capstan", "subnet": "10.244.9.1/24", "bridge": "capstan0",
                           "dataDir": dir.join("var/lib/cni/networks/capstan")})
    }) else {
        return;
    };
    let (lab, cp) = (&c.lab, &c.cp);
    let dir = lab.node(0).dir().to_path_buf();
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
        "--client-ca-file",
        &cp.ca_cert().display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // CAPSTAN_BIN_DIR first: the target directory may be shared.
    let agent_bin = capstan_lab::bins::path("capstan-agent").expect("capstan-agent binary");
    let agent = lab
        .node(0)
        .spawn("kubelet", &agent_bin, &agent_args)
        .expect("spawn agent");
    let suite = Suite { c, _agent: agent };
    let cases: Vec<Case<Suite>> = vec![
        ("node_registers_ready_and_heartbeats", node_registers),
        (
            "bound_pod_runs_status_published_then_graceful_delete",
            api_pod_lifecycle,
        ),
        (
            "kubectl_logs_follow_tail_previous_through_the_api_server",
            kubectl_logs,
        ),
        (
            "agent_api_refuses_unauthenticated_and_nodes",
            agent_api_auth,
        ),
    ];
    kube_suite::run(args, Arc::new(suite), cases);
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
    if node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] != 10250 {
        return Err(format!("daemonEndpoints {}", node["status"]["daemonEndpoints"]).into());
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

/// The logger pod: prints its attempt number and three lines, then echoes
/// whatever the test drops into the hostPath directory (`say`) and exits 1
/// when told to (`exit`), so a test can write a line at a chosen moment.
fn start_logger(s: &Suite, trigger: &Path) -> Result<(), Failed> {
    std::fs::create_dir_all(trigger)?;
    s.kubectl(
        &["apply", "-f", "-"],
        Some(&format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: logger, namespace: default}}
spec:
  nodeName: {NODE}
  terminationGracePeriodSeconds: 1
  volumes:
  - {{name: t, hostPath: {{path: {dir}}}}}
  containers:
  - name: main
    image: {IMAGE}
    volumeMounts: [{{name: t, mountPath: /t}}]
    command: ["sh", "-c"]
    args:
    - |
      n=$(cat /t/count 2>/dev/null || echo 0); echo $((n+1)) > /t/count
      echo "attempt $n"; echo first; echo second; echo third
      while true; do
        if [ -f /t/say ]; then cat /t/say; rm -f /t/say; fi
        if [ -f /t/exit ]; then rm -f /t/exit; echo bye; exit 1; fi
        sleep 0.1
      done
"#,
            dir = trigger.display()
        )),
    )?;
    Ok(())
}

/// `kubectl logs -f` running in the background, its lines in a stream.
struct Follower(Stream<String>);

impl Follower {
    fn start(s: &Suite, args: &[&str]) -> Result<Self, Failed> {
        let mut c = s.cp.kubectl().map_err(|e| e.to_string())?;
        let child = c
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        Ok(Follower(Stream::start(child, lines)?))
    }
    /// Lines until one equals `want`; error after `timeout`.
    fn until(&mut self, want: &str, timeout: Duration) -> Result<Vec<String>, Failed> {
        let from = self.0.seen.len();
        let got = self.0.until(timeout, |l| l == want);
        let seen = self.0.seen[from..].to_vec();
        match got {
            Ok(_) => Ok(seen),
            Err(_) => Err(format!("{want:?} not streamed in {timeout:?}; got {seen:?}").into()),
        }
    }
}

fn kubectl_logs(s: &Suite) -> Result<(), Failed> {
    let trigger = s.lab.node(0).dir().join("logger-trigger");
    start_logger(s, &trigger)?;
    let logs = |extra: &[&str]| {
        let mut a = vec!["logs", "logger"];
        a.extend_from_slice(extra);
        s.kubectl(&a, None)
    };
    wait_for(
        "logger's first lines",
        Duration::from_secs(30),
        || logs(&[]).ok().filter(|l| l.ends_with("third\n")),
        || format!("{}\nkubectl logs: {:?}", s.log(), logs(&[])),
    )?;
    let all = logs(&[])?;
    if all != "attempt 0\nfirst\nsecond\nthird\n" {
        return Err(format!("kubectl logs: {all:?}").into());
    }
    let tail = logs(&["--tail=2"])?;
    if tail != "second\nthird\n" {
        return Err(format!("kubectl logs --tail=2: {tail:?}").into());
    }
    let stamped = logs(&["--timestamps", "--limit-bytes=1000"])?;
    let first = stamped.lines().next().unwrap_or_default();
    let (ts, text) = first.split_once(' ').unwrap_or_default();
    if text != "attempt 0" || ts.parse::<jiff::Timestamp>().is_err() {
        return Err(format!("kubectl logs --timestamps: {stamped:?}").into());
    }
    if logs(&["--limit-bytes=12"])? != "attempt 0\nfi" {
        return Err("--limit-bytes not honoured".into());
    }
    if logs(&["--since=1h"])? != all {
        return Err("--since=1h lost lines".into());
    }
    match logs(&["--previous"]) {
        Err(e) if format!("{e:?}").contains("previous terminated container") => {}
        other => return Err(format!("--previous before any restart: {other:?}").into()),
    }

    // -f: the old lines, then a line written after the call started.
    let mut follow = Follower::start(s, &["logs", "-f", "logger"])?;
    follow.until("third", Duration::from_secs(10))?;
    let t0 = Instant::now();
    std::fs::write(trigger.join("say.tmp"), "streamed-line\n")?;
    std::fs::rename(trigger.join("say.tmp"), trigger.join("say"))?;
    follow.until("streamed-line", Duration::from_secs(10))?;
    eprintln!(
        "kubectl logs -f: a new line arrived {:?} after it was written",
        t0.elapsed()
    );

    // The container exits: the follower ends, the container restarts, and
    // --previous shows the attempt that ended.
    std::fs::write(trigger.join("exit"), "")?;
    follow.until("bye", Duration::from_secs(10))?;
    wait_for(
        "kubectl logs -f ends when the container exits",
        Duration::from_secs(10),
        || follow.0.child.try_wait().ok().flatten(),
        || s.log(),
    )?;
    wait_for(
        "restartCount 1",
        Duration::from_secs(30),
        || {
            s.get(&["pod", "logger"]).filter(|p| {
                p["status"]["containerStatuses"][0]["restartCount"] == 1
                    && p["status"]["containerStatuses"][0]["state"]["running"].is_object()
            })
        },
        || s.log(),
    )?;
    wait_for(
        "the new attempt's lines",
        Duration::from_secs(10),
        || {
            logs(&[])
                .ok()
                .filter(|l| l == "attempt 1\nfirst\nsecond\nthird\n")
        },
        || s.log(),
    )?;
    let previous = logs(&["--previous"])?;
    if previous != "attempt 0\nfirst\nsecond\nthird\nstreamed-line\nbye\n" {
        return Err(format!("kubectl logs --previous: {previous:?}").into());
    }
    s.kubectl(&["delete", "pod", "logger", "--wait=false"], None)?;
    wait_for(
        "logger gone",
        Duration::from_secs(20),
        || s.get(&["pod", "logger"]).is_none().then_some(()),
        || s.log(),
    )?;
    let _ = std::fs::remove_dir_all(&trigger);
    Ok(())
}

/// curl against :10250 from outside the node: no certificate is 401, a
/// node's certificate 403, the admin's (what the API server presents) 200.
fn agent_api_auth(s: &Suite) -> Result<(), Failed> {
    let url = "https://192.168.250.11:10250";
    let curl = |path: &str, cert: Option<&str>| -> Result<String, Failed> {
        let mut c = s.cp.command("curl").map_err(|e| e.to_string())?;
        c.args([
            "-sk",
            "--max-time",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ]);
        if let Some(who) = cert {
            let pki = s.cp.pki_dir();
            c.arg("--cert")
                .arg(pki.join(format!("{who}.crt")))
                .arg("--key")
                .arg(pki.join(format!("{who}.key")));
        }
        c.arg(format!("{url}{path}"));
        Ok(cmd::stdout(&mut c)
            .map_err(|e| e.to_string())?
            .trim()
            .to_string())
    };
    let logs = "/containerLogs/default/nosuchpod/main";
    let got = (
        curl(logs, None)?,
        curl(logs, Some(&format!("node-{NODE}")))?,
        curl(logs, Some("admin"))?,
        curl("/healthz", None)?,
    );
    if got != ("401".into(), "403".into(), "404".into(), "200".into()) {
        return Err(format!(
            "(anonymous, node, admin, healthz) answered {got:?}, want 401, 403, 404 (no such pod), 200"
        )
        .into());
    }
    Ok(())
}
