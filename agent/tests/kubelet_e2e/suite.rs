//! The kubelet_e2e fixture: two nodes with the overlay's network config in
//! etcd, capstan-cni in hairpin mode, and one `capstan-agent --components
//! overlay,kubelet,proxy` per node that a test may restart.

use std::ops::Deref;

use capstan_lab::cmd;
use capstan_lab::daemon::Daemon;
use libtest_mimic::Failed;

use crate::kube_suite::Cluster;

pub const IMAGE: &str = capstan_lab::image::TEST_IMAGE;
pub const NODE_PORT: u16 = 30080;
/// The lab registry listens on node-1's underlay address at this port.
pub const REGISTRY_PORT: u16 = 5000;
pub const NETWORK_CONFIG: &str =
    r#"{"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan","VNI":1,"Port":8472}}"#;

pub struct Suite {
    pub c: Cluster,
    pub agents: std::sync::Mutex<Vec<Option<Daemon>>>,
}

/// The suite is its cluster plus the agents: `s.lab`, `s.kubectl(..)`.
impl Deref for Suite {
    type Target = Cluster;
    fn deref(&self) -> &Cluster {
        &self.c
    }
}

impl Suite {
    pub fn log(&self) -> String {
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
    pub fn agent_args(&self, i: usize) -> Vec<String> {
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
            // The lab's registry (registry_pulls) speaks plain HTTP.
            format!("--insecure-registry={}", self.registry_host()),
        ]
    }
    pub fn registry_host(&self) -> String {
        format!("{}:{REGISTRY_PORT}", self.lab.node(0).ip())
    }
    pub fn start_agent(&self, i: usize) -> Result<(), Failed> {
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

impl Suite {
    /// The lab, the network config, both agents (None: skipped).
    pub fn start() -> Option<Suite> {
        let tools = [
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
            "docker-registry",
            "skopeo",
        ];
        let c = Cluster::start("kubelet_e2e", &tools, 2, |dir| {
            serde_json::json!({
                "type": "capstan", "subnetFile": dir.join("run/capstan/subnet.env"),
                "dataDir": dir.join("var/lib/cni/networks/capstan"), "hairpinMode": true
            })
        })?;
        cmd::run(
            c.lab
                .node(0)
                .command("etcdctl")
                .expect("etcdctl")
                .env("ETCDCTL_API", "3")
                .arg(format!("--endpoints={}", c.lab.etcd_endpoint()))
                .args(["put", "/capstan/network/config", NETWORK_CONFIG]),
        )
        .expect("network config into etcd");
        let suite = Suite {
            c,
            agents: std::sync::Mutex::new(Vec::new()),
        };
        for i in 0..2 {
            suite.start_agent(i).expect("start agent");
        }
        Some(suite)
    }
}
