//! The node-pressure features' own API-driven agent (etcd, capstan-control
//! and a second kubelet on node-1) and readers of Node status and memory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use capstan_lab::control::ControlPlane;
use capstan_lab::daemon::Daemon;
use libtest_mimic::Failed;
use serde_json::Value;

use crate::socket_proxy::SocketProxy;
use crate::suite::*;
use crate::support::*;

/// The pressure test's own API-driven agent on node-1, beside the suite's
/// static-pod agent: its own root, log, netns prefix and cgroup root, no
/// agent API port. Dropping it deletes its pods, stops it, the control
/// plane and etcd.
pub struct PressureAgent<'a> {
    pub s: &'a Suite,
    pub cp: ControlPlane,
    pub agent: Option<Daemon>,
    /// The agent reaches containerd through this, so the test can take
    /// the runtime away from it (and only from it).
    pub proxy: Option<SocketProxy>,
    /// The current agent's log (`logs/<name>.log`; a restart starts a
    /// new one).
    pub log_name: String,
    pub runs: u32,
}

impl<'a> PressureAgent<'a> {
    /// etcd, capstan-control and an API-driven agent on node-1 with the
    /// common flags plus `extra` (reservations, thresholds).
    pub fn start(s: &'a Suite, extra: &[String]) -> Result<Self, Failed> {
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

    pub fn proxy_path(&self) -> PathBuf {
        self.s.dir().join("pressure/containerd.sock")
    }

    pub fn spawn(&mut self, extra: &[String]) -> Result<(), Failed> {
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
    pub fn restart(&mut self, extra: &[String]) -> Result<(), Failed> {
        if let Some(mut d) = self.agent.take() {
            d.stop(Duration::from_secs(5));
        }
        self.spawn(extra)
    }

    pub fn apply(&self, yaml: &str) -> Result<(), Failed> {
        self.kubectl(&["apply", "-f", "-"], Some(yaml)).map(|_| ())
    }

    /// Waits until pod `name` satisfies `f`; returns the pod.
    pub fn wait_pod(
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
    pub fn event(&self, name: &str, reason: &str) -> Option<Value> {
        let events = self.get(&["events", "-n", "default"])?;
        events["items"]
            .as_array()?
            .iter()
            .find(|e| e["involvedObject"]["name"] == name && e["reason"] == reason)
            .cloned()
    }

    pub fn node(&self) -> Value {
        self.get(&["node", NODE]).unwrap_or_default()
    }

    pub fn root(&self) -> PathBuf {
        self.s.dir().join("pressure/kubelet")
    }
    pub fn cgroup_root(&self) -> String {
        format!("{}/pressure", self.s.lab.cgroup_root())
    }
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Result<String, Failed> {
        Ok(self.cp.kubectl_run(args, stdin)?)
    }
    pub fn get(&self, args: &[&str]) -> Option<Value> {
        crate::kube_suite::get_json(&self.cp, args)
    }
    pub fn log(&self) -> String {
        capstan_lab::daemon::log_tail(
            &self.s.dir().join(format!("logs/{}.log", self.log_name)),
            30,
        )
    }
    pub fn with_log(&self, e: Failed) -> Failed {
        format!(
            "{}\npressure agent log:\n{}",
            e.message().unwrap_or_default(),
            self.log()
        )
        .into()
    }
    /// Working set of the pod's memory cgroup as the agent measures it
    /// (cgroup v1's memory controller, else the unified hierarchy).
    pub fn pod_memory(&self, uid: &str) -> Option<i64> {
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
    pub fn remove_pods(&self) -> Result<(), Failed> {
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

pub fn mem_total_bytes() -> Result<i64, Failed> {
    let t = std::fs::read_to_string("/proc/meminfo")?;
    t.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<i64>().ok())
        .map(|k| k * 1024)
        .ok_or_else(|| "no MemTotal in /proc/meminfo".into())
}

/// A Kubernetes quantity in base units (cpu in millicores when `milli`).
pub fn quantity(q: &Value, milli: bool) -> i64 {
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

pub fn has_taint(node: &Value, key: &str) -> bool {
    node["spec"]["taints"].as_array().is_some_and(|t| {
        t.iter()
            .any(|t| t["key"] == key && t["effect"] == "NoSchedule")
    })
}
