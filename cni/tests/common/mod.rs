//! Shared fixture for the CNI integration tests: a private "node" netns
//! (the bridge lives there, never in the host namespace), pod netns on
//! demand, a private IPAM dir and subnet file, and a way to call the plugin
//! binary inside the node netns. Everything is removed on drop, also when a
//! test panics.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use capstan_lab::Netns;
use serde_json::{json, Value};

pub const PLUGIN: &str = env!("CARGO_BIN_EXE_capstan-cni");
pub const REFERENCE_DIR: &str = "/usr/lib/cni";

/// Returns false (skip) unless we may run privileged tests.
pub fn may_run(test: &str) -> bool {
    capstan_lab::privileged::require(test, &["ip"])
}

fn unique_prefix() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "cni-{:x}{:x}{n:x}-",
        std::process::id() & 0xffff,
        nanos & 0xfffff
    )
}

pub struct Fixture {
    pub prefix: String,
    pub node: Netns,
    pub dir: PathBuf,
    pods: std::sync::Mutex<Vec<Netns>>,
}

/// The outcome of one plugin call.
#[derive(Debug)]
pub struct Answer {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {:?}; stderr: {}",
                self.stdout, self.stderr
            )
        })
    }

    /// The spec error code; panics when the call succeeded.
    pub fn code(&self) -> u64 {
        assert!(!self.ok, "expected a failure, got success: {}", self.stdout);
        let v = self.json();
        assert!(
            v["msg"].as_str().is_some_and(|m| !m.is_empty()),
            "error without msg: {v}"
        );
        v["code"]
            .as_u64()
            .unwrap_or_else(|| panic!("error without code: {v}"))
    }

    pub fn expect_ok(&self) -> &Self {
        assert!(
            self.ok,
            "plugin failed: stdout {} stderr {}",
            self.stdout, self.stderr
        );
        self
    }
}

impl From<Output> for Answer {
    fn from(o: Output) -> Self {
        Answer {
            ok: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Fixture {
    pub fn new() -> Self {
        let prefix = unique_prefix();
        let node = Netns::create(&format!("{prefix}node")).expect("create node netns");
        let dir = std::env::temp_dir().join(format!("capstan-{prefix}test"));
        std::fs::create_dir_all(&dir).expect("create test dir");
        Fixture {
            prefix,
            node,
            dir,
            pods: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// A fresh pod netns; its path for CNI_NETNS.
    pub fn pod(&self, name: &str) -> PathBuf {
        let ns = Netns::create(&format!("{}{name}", self.prefix)).expect("create pod netns");
        let path = ns.path();
        self.pods.lock().unwrap_or_else(|p| p.into_inner()).push(ns);
        path
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("ipam")
    }

    pub fn subnet_file(&self) -> PathBuf {
        self.dir.join("subnet.env")
    }

    pub fn write_subnet_file(&self, text: &str) {
        std::fs::write(self.subnet_file(), text).expect("write subnet file");
    }

    /// A capstan network config using this fixture's subnet file and IPAM dir.
    pub fn conf(&self, version: &str) -> Value {
        json!({
            "cniVersion": version,
            "name": "capstan-test",
            "type": "capstan",
            "subnetFile": self.subnet_file(),
            "dataDir": self.data_dir(),
        })
    }

    /// Runs `program` inside the node netns with the CNI variables.
    pub fn exec(&self, program: &Path, env: &[(&str, &str)], stdin: &[u8]) -> Answer {
        let mut cmd: Command = self.node.command(program).expect("node command");
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_PATH", REFERENCE_DIR)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn plugin");
        if let Some(mut input) = child.stdin.take() {
            let _ = input.write_all(stdin);
        }
        child.wait_with_output().expect("wait for plugin").into()
    }

    pub fn call(
        &self,
        command: &str,
        id: &str,
        netns: &Path,
        ifname: &str,
        conf: &Value,
    ) -> Answer {
        let netns = netns.display().to_string();
        self.exec(
            Path::new(PLUGIN),
            &[
                ("CNI_COMMAND", command),
                ("CNI_CONTAINERID", id),
                ("CNI_NETNS", &netns),
                ("CNI_IFNAME", ifname),
            ],
            conf.to_string().as_bytes(),
        )
    }

    /// `ip` run inside the node netns, stdout as text.
    pub fn node_ip(&self, args: &[&str]) -> String {
        ip_in(self.node.name(), args)
    }

    /// Links in the node netns other than lo and the bridge.
    pub fn node_veths(&self) -> Vec<String> {
        self.node_ip(&["-o", "link", "show", "type", "veth"])
            .lines()
            .filter_map(|l| l.split(':').nth(1))
            .map(|s| s.trim().split('@').next().unwrap_or("").to_string())
            .collect()
    }

    /// Reserved addresses in the IPAM dir.
    pub fn reservations(&self) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(self.data_dir()) else {
            return Vec::new();
        };
        let mut v: Vec<String> = dir
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            // Records are `<ip>@<owner hash>` (or a bare `<ip>`).
            .filter_map(|n| n.split('@').next().map(str::to_string))
            .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok())
            .collect();
        v.sort();
        v
    }
}

pub fn ip_in(netns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .arg("-n")
        .arg(netns)
        .args(args)
        .output()
        .expect("run ip");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Name of the netns at a /run/netns path.
pub fn ns_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Pods first (their veth ends die with them), then the node netns
        // takes the bridge and any host ends along.
        self.pods.lock().unwrap_or_else(|p| p.into_inner()).clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub const SUBNET_V4: &str = "CAPSTAN_NETWORK=10.244.0.0/16\nCAPSTAN_SUBNET=10.244.1.1/24\nCAPSTAN_MTU=1450\nCAPSTAN_IPMASQ=true\n";

/// With `prev` set as prevResult.
pub fn with_prev(conf: &Value, prev: &Value) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = prev.clone();
    c
}
