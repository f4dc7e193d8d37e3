//! The kubelet_lab fixture: one node with containerd, capstan-cni as its
//! CNI plugin, a manifest directory and one `capstan-agent --components
//! kubelet` reading it; paths, status files and commands inside the node.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use capstan_lab::daemon::Daemon;
use capstan_lab::{cmd, privileged, Lab};
use libtest_mimic::Failed;
use serde_json::Value;

pub const AGENT: &str = env!("CARGO_BIN_EXE_capstan-agent");
pub const IMAGE: &str = "capstan.local/busybox:lab";
pub const NODE: &str = "node-1";
pub const SUBNET: &str = "10.244.7.1/24";

pub struct Suite {
    pub lab: Lab,
    pub agent: Mutex<Option<Daemon>>,
}

impl Suite {
    pub fn dir(&self) -> PathBuf {
        self.lab.node(0).dir().to_path_buf()
    }
    pub fn manifests(&self) -> PathBuf {
        self.dir().join("etc/kubernetes/manifests")
    }
    pub fn root(&self) -> PathBuf {
        self.dir().join("var/lib/capstan/kubelet")
    }
    pub fn netns_prefix(&self) -> String {
        format!("{}-pod-", self.lab.prefix())
    }
    pub fn args(&self) -> Vec<String> {
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
    pub fn start_agent(&self) {
        let d = self
            .lab
            .node(0)
            .spawn("kubelet", Path::new(AGENT), &self.args())
            .expect("spawn agent");
        *self.agent.lock().unwrap_or_else(|e| e.into_inner()) = Some(d);
    }
    pub fn log(&self) -> String {
        capstan_lab::daemon::log_tail(&self.dir().join("logs/kubelet.log"), 40)
    }
    pub fn put(&self, file: &str, yaml: &str) {
        let tmp = self.manifests().join(format!(".{file}.tmp"));
        std::fs::write(&tmp, yaml).expect("write manifest");
        std::fs::rename(&tmp, self.manifests().join(file)).expect("move manifest");
    }
    pub fn delete(&self, file: &str) {
        std::fs::remove_file(self.manifests().join(file)).expect("remove manifest");
    }
    pub fn status(&self, pod: &str) -> Option<Value> {
        let p = self
            .root()
            .join("pod-status")
            .join(format!("default_{pod}-{NODE}.json"));
        serde_json::from_slice(&std::fs::read(p).ok()?).ok()
    }
    /// Polls the pod's status file until `f` holds.
    pub fn wait_status(
        &self,
        pod: &str,
        what: &str,
        timeout: Duration,
        f: impl Fn(&Value) -> bool,
    ) -> Result<Value, Failed> {
        capstan_lab::wait::wait_for(what, timeout, || self.status(pod).filter(|s| f(s))).map_err(
            |_| {
                format!(
                    "pod {pod}: {what} not reached in {timeout:?}; last status:\n{}\nagent log:\n{}",
                    self.status(pod)
                        .map(|s| serde_json::to_string_pretty(&s["status"]).unwrap_or_default())
                        .unwrap_or_else(|| "none".into()),
                    self.log()
                )
                .into()
            },
        )
    }
    pub fn ctr(&self, args: &[&str]) -> Result<String, Failed> {
        let mut c = self.lab.node(0).ctr().map_err(|e| e.to_string())?;
        cmd::stdout(c.args(args)).map_err(|e| e.to_string().into())
    }
    pub fn in_node(&self, program: &str, args: &[&str]) -> Result<String, Failed> {
        let mut c = self
            .lab
            .node(0)
            .command(program)
            .map_err(|e| e.to_string())?;
        cmd::stdout(c.args(args)).map_err(|e| e.to_string().into())
    }
}

impl Suite {
    /// The lab (one node, containerd, capstan-cni with a conflist that
    /// must win over a bogus one) and the static-pod agent; None: skipped.
    pub fn start() -> Option<Suite> {
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
            return None;
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
        let suite = Suite {
            lab,
            agent: Mutex::new(None),
        };
        suite.start_agent();
        Some(suite)
    }
}

/// The agent stops (gracefully) before the lab goes.
impl Drop for Suite {
    fn drop(&mut self) {
        if let Some(mut d) = self.agent.lock().unwrap_or_else(|e| e.into_inner()).take() {
            d.stop(Duration::from_secs(5));
        }
    }
}
