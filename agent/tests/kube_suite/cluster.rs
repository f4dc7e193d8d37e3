//! The lab a kubelet suite starts from: etcd, containerd and
//! capstan-control, capstan-cni installed on every node with the suite's
//! plugin config. It never starts agents: each suite owns its flags.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use capstan_lab::control::ControlPlane;
use capstan_lab::{privileged, Lab};
use libtest_mimic::Failed;
use serde_json::Value;

pub struct Cluster {
    pub lab: Lab,
    pub cp: ControlPlane,
}

impl Cluster {
    /// `nodes` nodes with containerd, etcd and the API server, after the
    /// privilege and tool check (None: skipped, already said why).
    /// `plugin` gives node `dir`'s capstan plugin entry of the conflist.
    pub fn start(
        suite: &str,
        tools: &[&str],
        nodes: usize,
        plugin: impl Fn(&Path) -> Value,
    ) -> Option<Cluster> {
        if !privileged::require(suite, tools) {
            return None;
        }
        let cni = capstan_lab::bins::path("capstan-cni")
            .unwrap_or_else(|e| panic!("{e}; build it first: cargo build -p capstan-cni"));
        let lab = Lab::builder()
            .nodes(nodes)
            .etcd(true)
            .containerd(true)
            .build()
            .expect("build lab");
        let cp = ControlPlane::start(&lab).expect("start capstan-control");
        for i in 0..nodes {
            let dir = lab.node(i).dir().to_path_buf();
            std::fs::copy(&cni, dir.join("opt/cni/bin/capstan")).expect("install capstan-cni");
            std::fs::write(
                dir.join("etc/cni/net.d/10-capstan.conflist"),
                serde_json::json!({
                    "cniVersion": "1.0.0", "name": "capstan", "plugins": [plugin(&dir)]
                })
                .to_string(),
            )
            .expect("write conflist");
        }
        Some(Cluster { lab, cp })
    }

    /// `kubectl ARGS` (with `stdin` piped in): its stdout, or the call and
    /// its stderr as the failure.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Result<String, Failed> {
        Ok(self.cp.kubectl_run(args, stdin)?)
    }

    /// `kubectl get ARGS -o json`, None when it fails or is not JSON.
    pub fn get(&self, args: &[&str]) -> Option<Value> {
        get_json(&self.cp, args)
    }

    /// `kubectl ARGS` as a long-running child (`logs -f`, `get -w`).
    pub fn kubectl_child(&self, args: &[&str]) -> Result<Child, Failed> {
        let mut c = self.cp.kubectl().map_err(|e| e.to_string())?;
        Ok(c.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?)
    }
}

/// `kubectl get ARGS -o json` against `cp`, None when it fails or is not
/// JSON (what a wait polls).
pub fn get_json(cp: &ControlPlane, args: &[&str]) -> Option<Value> {
    let mut a = vec!["get"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&cp.kubectl_run(&a, None).ok()?).ok()
}

/// capstan-lab's wait, its timeout followed by `log()` (an agent-log tail,
/// the object as last seen).
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    f: impl FnMut() -> Option<T>,
    log: impl Fn() -> String,
) -> Result<T, Failed> {
    capstan_lab::wait::wait_for(what, timeout, f).map_err(|e| format!("{e}\n{}", log()).into())
}
