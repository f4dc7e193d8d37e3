//! The daemonset_e2e fixture: a lab whose nodes run only the kubelet
//! (`capstan-agent --components=kubelet`, default node paths, which the
//! node's mount namespace makes its own), capstan-control handing out
//! podCIDRs, the Capstan image from `deploy/image/build.sh` imported into
//! every node's containerd, and the network installed as users install it:
//! `kubectl apply -k deploy/kubernetes`. Nodes can be added later.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use capstan_lab::control::{self, ControlPlane};
use capstan_lab::daemon::{log_tail, Daemon};
use capstan_lab::suite::Fixture;
use capstan_lab::{cmd, Lab, Node};
use libtest_mimic::Failed;
use serde_json::Value;

use crate::support::name;

pub const CLUSTER_CIDR: &str = "10.244.0.0/16";
pub const NAMESPACE: &str = "capstan-system";
pub const AGENT_SELECTOR: &str = "app.kubernetes.io/name=capstan";
pub const IMAGE: &str = capstan_lab::image::TEST_IMAGE;
/// How long a DaemonSet rollout may take (image already on the nodes).
pub const ROLLOUT: Duration = Duration::from_secs(180);

/// Fields drop in order: kubelets, then the server, then the lab.
pub struct Suite {
    kubelets: Mutex<Vec<Daemon>>,
    pub cp: ControlPlane,
    pub lab: Lab,
}

/// The repository's root (for deploy/).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

pub fn manifests() -> PathBuf {
    repo().join("deploy/kubernetes")
}

impl Suite {
    pub fn setup(lab: Lab) -> Result<Suite, String> {
        let cp = ControlPlane::start_with(
            &lab,
            &lab.etcd_endpoint(),
            &[
                "--allocate-node-cidrs".into(),
                format!("--cluster-cidr={CLUSTER_CIDR}"),
            ],
        )
        .map_err(|e| format!("start capstan-control: {e}"))?;
        let s = Suite {
            kubelets: Mutex::new(Vec::new()),
            cp,
            lab,
        };
        for node in s.lab.nodes() {
            s.join(&node)?;
        }
        s.api_endpoint_config()?;
        s.kubectl(&["apply", "-k", &manifests().display().to_string()], None)?;
        s.rollout()?;
        Ok(s)
    }

    /// A node as the cluster sees it: the image, then its kubelet.
    fn join(&self, node: &Node) -> Result<(), String> {
        import_image(node)?;
        let bin = capstan_lab::bins::path("capstan-agent").map_err(|e| e.to_string())?;
        let d = node
            .spawn("agent", &bin, &self.kubelet_args(node))
            .map_err(|e| format!("start the kubelet on {}: {e}", node.name()))?;
        self.kubelets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(d);
        Ok(())
    }

    /// The kubelet alone, with its default CNI, state and log paths: the
    /// node's own in its mount namespace, where the DaemonSet's hostPath
    /// volumes put the plugin and its config.
    fn kubelet_args(&self, node: &Node) -> Vec<String> {
        vec![
            "--components=kubelet".into(),
            format!("--node-name={}", node.name()),
            format!("--node-ip={}", node.ip()),
            format!(
                "--kubeconfig={}",
                self.cp.node_kubeconfig(node.name()).display()
            ),
            format!("--containerd-socket={}", node.containerd_socket().display()),
            "--containerd-namespace=capstan".into(),
            "--netns-dir=/run/netns".into(),
            format!("--netns-prefix={}-{}-pod-", self.lab.prefix(), node.name()),
            format!("--cgroup-root={}", self.lab.cgroup_root()),
            format!("--client-ca-file={}", self.cp.ca_cert().display()),
            // The lab's nodes share the machine's disk with everything
            // else on it: only memory may evict here, so a full build
            // directory elsewhere never rejects the suite's pods.
            "--eviction-hard=memory.available<50Mi".into(),
        ]
    }

    /// The API server's real address for pods that cannot use the
    /// `kubernetes` Service's ClusterIP before a proxy runs: the network
    /// add-on is that proxy (Calico's and Cilium's convention: a ConfigMap
    /// whose keys become the agent's KUBERNETES_SERVICE_HOST/PORT).
    fn api_endpoint_config(&self) -> Result<(), String> {
        let yaml = format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NAMESPACE}\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kubernetes-services-endpoint\n  namespace: {NAMESPACE}\n\
             data:\n  KUBERNETES_SERVICE_HOST: \"{}\"\n  KUBERNETES_SERVICE_PORT: \"{}\"\n",
            self.lab.underlay_ip(),
            control::PORT
        );
        self.kubectl(&["apply", "-f", "-"], Some(&yaml)).map(|_| ())
    }

    /// Adds node N+1 to the running cluster: lab node (namespaces,
    /// containerd), its credentials, the image and its kubelet.
    pub fn add_node(&self) -> Result<Node, String> {
        let node = self.lab.add_node().map_err(|e| e.to_string())?;
        let program = capstan_lab::bins::path("capstan-control").map_err(|e| e.to_string())?;
        control::init(
            &program,
            self.cp.pki_dir(),
            self.lab.underlay_ip(),
            &[node.name().to_string()],
        )
        .map_err(|e| e.to_string())?;
        self.join(&node)?;
        Ok(node)
    }

    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        self.cp.kubectl_run(args, stdin)
    }

    /// `kubectl get ARGS -o json`; None when it fails.
    pub fn get(&self, args: &[&str]) -> Option<Value> {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.kubectl(&a, None).ok()?).ok()
    }

    /// `kubectl rollout status ds/capstan`: every node runs an updated,
    /// available agent pod.
    pub fn rollout(&self) -> Result<(), String> {
        let timeout = format!("--timeout={}s", ROLLOUT.as_secs());
        self.kubectl(
            &["-n", NAMESPACE, "rollout", "status", "ds/capstan", &timeout],
            None,
        )
        .map(|_| ())
        .map_err(|e| format!("{e}\n{}", self.agent_logs()))
    }

    /// The agent pods (namespace capstan-system), as JSON items.
    pub fn agent_pods(&self) -> Vec<Value> {
        self.get(&["pods", "-n", NAMESPACE, "-l", AGENT_SELECTOR])
            .and_then(|v| v["items"].as_array().cloned())
            .unwrap_or_default()
    }

    /// Polls with the suite's context (agent pods and logs) on timeout.
    pub fn wait_for<T>(
        &self,
        what: &str,
        within: Duration,
        f: impl FnMut() -> Option<T>,
    ) -> Result<T, Failed> {
        capstan_lab::wait::wait_for(what, within, f)
            .map_err(|e| format!("{e}\n{}", self.agent_logs()).into())
    }

    /// Runs `program` in the underlay, outside every node (an external
    /// client).
    pub fn outside(&self, program: &str, args: &[&str]) -> Result<String, String> {
        let mut c = self.cp.command(program).map_err(|e| e.to_string())?;
        cmd::stdout(c.args(args)).map_err(|e| e.to_string())
    }

    pub fn agent_logs(&self) -> String {
        let pods = self
            .kubectl(&["get", "pods", "-A", "-o", "wide"], None)
            .unwrap_or_else(|e| e);
        let mut out = format!("pods:\n{pods}");
        for node in self.lab.nodes() {
            // Warnings and errors only: a retrying pod worker logs its
            // progress every second.
            let log =
                std::fs::read_to_string(node.dir().join("logs/agent.log")).unwrap_or_default();
            let bad: Vec<&str> = log
                .lines()
                .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
                .collect();
            out.push_str(&format!(
                "\n{} kubelet warnings (last 12):\n{}",
                node.name(),
                bad[bad.len().saturating_sub(12)..].join("\n")
            ));
        }
        for p in self.agent_pods() {
            let pod = name(&p);
            for c in ["install-cni", "agent"] {
                if let Ok(l) =
                    self.kubectl(&["-n", NAMESPACE, "logs", &pod, "-c", c, "--tail=5"], None)
                {
                    out.push_str(&format!("\nkubectl logs {pod} -c {c}:\n{l}"));
                }
            }
            out.push_str(&format!(
                "\n{pod} status: {}",
                serde_json::to_string(&p["status"]["containerStatuses"]).unwrap_or_default()
            ));
        }
        out
    }
}

/// `deploy/image/build.sh --import <socket> --namespace capstan`: the image
/// the DaemonSet runs, into the node's containerd (no registry here).
fn import_image(node: &Node) -> Result<(), String> {
    let script = repo().join("deploy/image/build.sh");
    let mut c = std::process::Command::new(&script);
    // The image packages the profile this suite was built in (test.sh
    // builds it before the tests; then this only packs and imports).
    if cfg!(debug_assertions) {
        c.arg("--debug");
    }
    cmd::run(
        c.arg("--import")
            .arg(node.containerd_socket())
            .args(["--namespace", "capstan"]),
    )
    .map(|_| ())
    .map_err(|e| format!("import the Capstan image into {}: {e}", node.name()))
}

impl Fixture for Suite {
    fn on_failure(&self) {
        eprintln!("{}", self.agent_logs());
        eprintln!(
            "capstan-control log (last lines):\n{}",
            log_tail(&self.cp.log(), 40)
        );
    }
}
