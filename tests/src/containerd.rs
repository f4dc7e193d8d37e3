//! A private containerd per lab node: its own config, root, state and
//! sockets under the node's directory, the CRI plugin off, running inside
//! the node's network and mount namespaces (`mntns.rs`: its rootfs mounts
//! stay in the node, host mounts made later, such as a pod netns the host
//! adds, still reach runc), as does every `ctr` the lab runs against it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::daemon::{Daemon, DaemonSpec};
use crate::netns::Netns;
use crate::state::NodeState;
use crate::LabError;

/// The containerd namespace lab nodes put their images and containers in.
pub const NAMESPACE: &str = "capstan";

pub fn socket(node_dir: &Path) -> PathBuf {
    node_dir.join("containerd/containerd.sock")
}

pub fn spec(node: &NodeState) -> Result<DaemonSpec, LabError> {
    let node_dir = node.dir.as_path();
    let program = crate::privileged::which("containerd").ok_or_else(|| {
        LabError::Other("containerd not found: apt-get install containerd runc".into())
    })?;
    let base = node_dir.join("containerd");
    std::fs::create_dir_all(&base).map_err(LabError::io("create containerd dir"))?;
    let config = format!(
        r#"version = 2
root = "{base}/root"
state = "{base}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[debug]
  address = ""
  level = "warn"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{base}/opt"
"#,
        base = base.display(),
        sock = socket(node_dir).display(),
    );
    let config_path = base.join("config.toml");
    std::fs::write(&config_path, config).map_err(LabError::io("write containerd config"))?;
    Ok(DaemonSpec {
        name: "containerd".into(),
        program,
        args: vec!["--config".into(), config_path.display().to_string()],
        env: vec![],
        netns: Some(node.netns.clone()),
        mntns: node.mntns.clone(),
        log: node_dir.join("logs/containerd.log"),
    })
}

/// Starts containerd and returns once its API answers.
pub fn start(spec: DaemonSpec, node_dir: &Path) -> Result<Daemon, LabError> {
    let mut d = Daemon::start(spec)?;
    let sock = socket(node_dir);
    d.wait_ready(Duration::from_secs(30), || {
        std::os::unix::net::UnixStream::connect(&sock).is_ok()
    })?;
    Ok(d)
}

/// A `ctr` command talking to this node's containerd, run in the node's
/// network and mount namespaces.
pub fn ctr(node: &NodeState) -> Result<Command, LabError> {
    let mut cmd = Netns::existing(&node.netns)?.command("ctr")?;
    if let Some(m) = &node.mntns {
        crate::mntns::enter_on_exec(m, &mut cmd)?;
    }
    cmd.arg("--address")
        .arg(socket(&node.dir))
        .arg("--namespace")
        .arg(NAMESPACE);
    Ok(cmd)
}

/// Kills and deletes every task and container, so runc removes their
/// cgroups and the shims exit cleanly. Best effort: used on teardown.
pub fn remove_all(node: &NodeState) {
    let list = |what: &str| -> Vec<String> {
        ctr(node)
            .ok()
            .and_then(|mut c| crate::cmd::stdout(c.args([what, "ls", "-q"])).ok())
            .map(|s| s.lines().map(str::to_string).collect())
            .unwrap_or_default()
    };
    for task in list("tasks") {
        if let Ok(mut c) = ctr(node) {
            let _ = c.args(["tasks", "kill", "-s", "SIGKILL", &task]).output();
        }
        if let Ok(mut c) = ctr(node) {
            let _ = c.args(["tasks", "delete", "-f", &task]).output();
        }
    }
    for container in list("containers") {
        if let Ok(mut c) = ctr(node) {
            let _ = c.args(["containers", "delete", &container]).output();
        }
    }
}
