//! The overlay_lab fixture: three nodes on one underlay, etcd with the
//! dual-stack network config, one overlay agent per node (metrics on), and
//! a pod with echo servers per node once every node is meshed.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use capstan_lab::daemon::Daemon;
use capstan_lab::{privileged, Lab};
use libtest_mimic::Failed;

use crate::common::*;

pub const NODES: usize = 3;
pub const CONFIG: &str = r#"{"Network":"10.244.0.0/16","SubnetLen":24,"IPv6Network":"fd00:10:244::/56","Backend":{"Type":"vxlan","VNI":1,"Port":8472,"DirectRouting":false}}"#;

/// Port of the agents' metrics endpoint (on each node's underlay address).
pub const METRICS_PORT: u16 = 9464;

pub struct Suite {
    pub lab: Lab,
    pub agents: Mutex<Vec<Option<Daemon>>>,
    pub pods: Vec<Pod>,
    pub cni: PathBuf,
}

impl Suite {
    /// Starts node `victim`'s agent again and waits until every node is
    /// meshed with it.
    pub fn respawn_and_remesh(&self, victim: usize) -> Result<(), Failed> {
        let lab = &self.lab;
        {
            let mut agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
            agents[victim] = Some(spawn_overlay(lab, victim));
        }
        for i in 0..NODES {
            wait_until(
                &format!("node {i} re-meshed"),
                Duration::from_secs(10),
                || meshed(lab, i),
            )?;
        }
        Ok(())
    }

    /// The meshed lab with its pods (None: skipped).
    pub fn start() -> Option<Suite> {
        if !privileged::require(
            "overlay_lab",
            &["ip", "bridge", "etcd", "etcdctl", "nft", "ping"],
        ) {
            return None;
        }
        let cni = cni_bin();
        let lab = Lab::builder()
            .nodes(NODES)
            .etcd(true)
            .containerd(false)
            .build()
            .expect("build lab");
        etcdctl(&lab, &["put", "/capstan/network/config", CONFIG]);
        // All agents start at the same instant: they race for subnets.
        let agents: Vec<Option<Daemon>> =
            (0..NODES).map(|i| Some(spawn_overlay(&lab, i))).collect();
        let suite = Suite {
            lab,
            agents: Mutex::new(agents),
            pods: Vec::new(),
            cni,
        };
        for i in 0..NODES {
            wait_until(
                &format!("node {i} fully meshed"),
                Duration::from_secs(20),
                || meshed(&suite.lab, i),
            )
            .unwrap_or_else(|e| panic!("{e:?}\nagent log:\n{}", agent_log(&suite.lab, i)));
        }
        let pods: Vec<Pod> = (0..NODES)
            .map(|i| make_pod(&suite.lab, &suite.cni, i))
            .collect();
        for p in &pods {
            start_echo(p);
        }
        Some(Suite { pods, ..suite })
    }
}

/// An overlay agent of this suite (with its metrics endpoint).
pub fn spawn_overlay(lab: &Lab, i: usize) -> Daemon {
    let addr = format!("{}:{METRICS_PORT}", lab.node(i).ip());
    spawn_agent(lab, i, &["--metrics-addr", &addr])
}

/// Runs a fast ping from pod `from` to pod `to` while `during` runs;
/// returns (sent, received).
pub fn ping_during(
    s: &Suite,
    from: usize,
    to: usize,
    count: u32,
    during: impl FnOnce(),
) -> (u32, u32) {
    let mut cmd = s.pods[from].ns.command("ping").expect("ping cmd");
    cmd.args([
        "-q",
        "-i",
        "0.01",
        "-W",
        "2",
        "-c",
        &count.to_string(),
        &s.pods[to].ip.to_string(),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn ping");
    during();
    let out = child.wait_with_output().expect("ping");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_default();
    let nums: Vec<u32> = line
        .split(',')
        .filter_map(|p| p.split_whitespace().next()?.parse().ok())
        .collect();
    (
        nums.first().copied().unwrap_or(0),
        nums.get(1).copied().unwrap_or(0),
    )
}
