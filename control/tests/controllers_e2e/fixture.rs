//! The suite's fixture: capstan-control with every controller and a short
//! node-monitor grace period, a kube-rs client and three simulated nodes
//! on a runtime inside the lab's underlay, and kubectl as the admin. No
//! assertions here.

use std::future::Future;

use capstan_lab::simnode::SimNodes;
use capstan_lab::suite::{ControlSuite, Fixture};
use capstan_lab::Lab;
use kube::config::{KubeConfigOptions, Kubeconfig};
use libtest_mimic::Failed;

/// Fields drop in order: the simulated nodes' runtime stops before the
/// server, the server before the lab.
pub struct Suite {
    pub rt: tokio::runtime::Runtime,
    pub client: kube::Client,
    pub sim: SimNodes,
    pub base: ControlSuite,
}

impl Suite {
    pub fn start(lab: Lab) -> Result<Suite, String> {
        let base = ControlSuite::start(lab, &["--node-monitor-grace-period=6s".to_string()])?;
        // Worker threads are born in the underlay namespace and so reach the server.
        let rt = base
            .lab()
            .underlay()
            .run_in(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
            })
            .map_err(|e| format!("enter underlay: {e}"))?
            .map_err(|e| format!("runtime: {e}"))?;
        let kubeconfig = base.admin_kubeconfig();
        let (client, sim) = rt
            .block_on(rt.spawn(async move {
                let kc =
                    Kubeconfig::read_from(&kubeconfig).map_err(|e| format!("kubeconfig: {e}"))?;
                let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                    .await
                    .map_err(|e| format!("config: {e}"))?;
                let client = kube::Client::try_from(cfg).map_err(|e| format!("client: {e}"))?;
                let sim = SimNodes::start(client.clone());
                for n in ["sim-a", "sim-b", "sim-c"] {
                    sim.add(n, &[("zone", "one")])
                        .await
                        .map_err(|e| format!("add node {n}: {e}"))?;
                }
                Ok::<_, String>((client, sim))
            }))
            .map_err(|e| format!("setup: {e}"))??;
        Ok(Suite {
            rt,
            client,
            sim,
            base,
        })
    }

    /// Runs `fut` to the end on the suite's runtime.
    pub fn block_on<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, Failed> {
        self.rt
            .block_on(self.rt.spawn(fut))
            .map_err(|e| Failed::from(e.to_string()))
    }

    /// A simulated node joins (or comes back) with `labels`.
    pub fn add_node(&self, name: &str, labels: &[(&str, &str)]) -> Result<(), Failed> {
        let sim = self.sim.clone();
        let name = name.to_string();
        let labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.block_on(async move {
            let labels: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            sim.add(&name, &labels).await
        })?
        .map_err(|e| e.to_string().into())
    }

    /// A simulated node leaves: its Node object is deleted.
    pub fn remove_node(&self, name: &str) -> Result<(), Failed> {
        let sim = self.sim.clone();
        let name = name.to_string();
        self.block_on(async move { sim.remove(&name).await })?
            .map_err(|e| e.to_string().into())
    }
}

impl Fixture for Suite {
    fn on_failure(&self) {
        self.base.on_failure();
    }
}

/// Admin kubectl that must succeed: its stdout. Manifests skip client-side
/// validation (the suite's own are plain and known good).
pub fn kubectl(s: &Suite, args: &[&str], stdin: Option<&str>) -> Result<String, Failed> {
    Ok(s.base.kubectl(&with_validate(args), stdin)?)
}

/// Admin kubectl that must fail: its stderr.
pub fn kubectl_err(s: &Suite, args: &[&str], stdin: Option<&str>) -> Result<String, Failed> {
    let admin = s.base.admin_kubeconfig();
    Ok(s.base.kubectl_err(&admin, args, stdin)?)
}

fn with_validate<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    if matches!(args.first(), Some(&"create") | Some(&"apply")) && args.contains(&"-f") {
        all.push("--validate=false");
    }
    all
}
