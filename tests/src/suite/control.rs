//! The fixture of a suite against capstan-control: the lab, the server in
//! its underlay (behind a lock, so a test may crash and restart it), and
//! kubectl as anyone through the one runner (`crate::kubectl`). It starts
//! and stops the server; the assertions stay in the suites.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Mutex, MutexGuard};

use super::run::Fixture;
use crate::control::ControlPlane;
use crate::Lab;

/// How many lines of the server's log a failed run prints.
const LOG_TAIL_LINES: usize = 60;

/// Fields drop in order: the server stops before the lab is torn down.
pub struct ControlSuite {
    cp: Mutex<ControlPlane>,
    lab: Lab,
    /// Put before every call's arguments (`--request-timeout=30s`).
    kubectl_flags: Vec<String>,
}

impl ControlSuite {
    /// Starts capstan-control on the lab's etcd with `flags`.
    pub fn start(lab: Lab, flags: &[String]) -> Result<Self, String> {
        let cp = ControlPlane::start_with(&lab, &lab.etcd_endpoint(), flags)
            .map_err(|e| format!("start capstan-control: {e}"))?;
        Ok(ControlSuite {
            cp: Mutex::new(cp),
            lab,
            kubectl_flags: Vec::new(),
        })
    }

    /// Flags every kubectl call of the suite carries.
    pub fn with_kubectl_flags(mut self, flags: &[&str]) -> Self {
        self.kubectl_flags = flags.iter().map(|f| f.to_string()).collect();
        self
    }

    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    /// The server. Hold the guard only to build a command or to restart:
    /// a guard living to the end of a statement that calls kubectl
    /// through this suite deadlocks. A test that panicked while holding it
    /// left a usable server behind, so a poisoned lock is taken as is.
    pub fn cp(&self) -> MutexGuard<'_, ControlPlane> {
        self.cp.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.cp().admin_kubeconfig()
    }

    pub fn node_kubeconfig(&self, node: &str) -> PathBuf {
        self.cp().node_kubeconfig(node)
    }

    /// Runs kubectl (`program`, or the one on PATH) with `kubeconfig` and
    /// `args` to the end, whatever its outcome.
    pub fn kubectl_output(
        &self,
        program: Option<&str>,
        kubeconfig: &Path,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<Output, String> {
        let mut c = {
            let cp = self.cp();
            match program {
                None => cp.kubectl_with(kubeconfig),
                Some(p) => cp.command(p).map(|mut c| {
                    c.arg("--kubeconfig").arg(kubeconfig);
                    c
                }),
            }
            .map_err(|e| e.to_string())?
        };
        c.args(&self.kubectl_flags).args(args);
        crate::kubectl::run(c, stdin)
    }

    /// Admin kubectl that must succeed: its stdout.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        let admin = self.admin_kubeconfig();
        crate::kubectl::success(args, self.kubectl_output(None, &admin, args, stdin)?)
    }

    /// kubectl with `kubeconfig` that must fail: its stderr.
    pub fn kubectl_err(
        &self,
        kubeconfig: &Path,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<String, String> {
        crate::kubectl::failure(args, self.kubectl_output(None, kubeconfig, args, stdin)?)
    }
}

impl Fixture for ControlSuite {
    fn on_failure(&self) {
        eprintln!(
            "capstan-control log (last lines):\n{}",
            crate::daemon::log_tail(&self.cp().log(), LOG_TAIL_LINES)
        );
    }
}
