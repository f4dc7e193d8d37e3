//! capstan-control in a lab: credentials made with `capstan-control init`
//! in `<lab dir>/pki`, the server in the underlay namespace on the bridge's
//! address (port 6443) against the lab's etcd, and kubectl run from the
//! underlay namespace with the admin's or a node's kubeconfig. It starts
//! and stops the process; it never talks the Kubernetes API itself.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::daemon::{Daemon, DaemonSpec};
use crate::netns::Netns;
use crate::{cmd, Lab, LabError};

pub const PORT: u16 = 6443;
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a lab's control-plane credentials live.
pub fn pki_dir(lab_dir: &Path) -> PathBuf {
    lab_dir.join("pki")
}

/// The API server's URL as every node and the underlay reach it.
pub fn server_url(ip: Ipv4Addr) -> String {
    format!("https://{ip}:{PORT}")
}

/// Runs `capstan-control init` for the lab's address and nodes.
pub fn init(program: &Path, pki: &Path, ip: Ipv4Addr, nodes: &[String]) -> Result<(), LabError> {
    let mut c = Command::new(program);
    c.arg("init")
        .arg("--dir")
        .arg(pki)
        .arg("--server")
        .arg(server_url(ip));
    for n in nodes {
        c.arg("--node").arg(n);
    }
    cmd::run(&mut c).map(|_| ())
}

/// The server's command line (also what `cluster.sh` spawns).
pub fn serve_args(pki: &Path, ip: Ipv4Addr, etcd: &str) -> Vec<String> {
    vec![
        "serve".into(),
        format!("--pki-dir={}", pki.display()),
        format!("--etcd-endpoints={etcd}"),
        format!("--bind-address={ip}"),
        format!("--secure-port={PORT}"),
    ]
}

/// A running capstan-control; stopped when dropped.
pub struct ControlPlane {
    daemon: Daemon,
    pki: PathBuf,
    underlay: String,
    ip: Ipv4Addr,
}

impl ControlPlane {
    /// Issues credentials (for every node of the lab), starts the server
    /// and returns once `/readyz` answers ok (etcd reachable). All admission
    /// is on: pods get their `kube-api-access-*` volume, which the lab's
    /// kubelets mount (projected volumes, TokenRequest).
    pub fn start(lab: &Lab) -> Result<Self, LabError> {
        Self::start_with(lab, &lab.etcd_endpoint(), &[])
    }

    /// As `start`, against another etcd endpoint and with extra flags
    /// (etcd over TLS: `--etcd-cafile=...`).
    pub fn start_with(lab: &Lab, etcd: &str, extra: &[String]) -> Result<Self, LabError> {
        let program = crate::bins::path("capstan-control")?;
        let pki = pki_dir(&lab.dir());
        let ip = lab.underlay_ip();
        let nodes: Vec<String> = lab.nodes().iter().map(|n| n.name().to_string()).collect();
        init(&program, &pki, ip, &nodes)?;
        let mut args = serve_args(&pki, ip, etcd);
        args.extend(extra.iter().cloned());
        let spec = DaemonSpec {
            name: "control".into(),
            program,
            args,
            env: vec![("RUST_LOG".into(), "info".into())],
            netns: Some(lab.underlay().name().to_string()),
            mntns: None,
            log: lab.dir().join("logs/control.log"),
        };
        let mut cp = ControlPlane {
            daemon: Daemon::start(spec)?,
            pki,
            underlay: lab.underlay().name().to_string(),
            ip,
        };
        cp.wait_ready()?;
        Ok(cp)
    }

    pub fn server(&self) -> String {
        server_url(self.ip)
    }
    pub fn pki_dir(&self) -> &Path {
        &self.pki
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.pki.join("ca.crt")
    }
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.pki.join("admin.kubeconfig")
    }
    pub fn node_kubeconfig(&self, node: &str) -> PathBuf {
        self.pki.join(format!("{node}.kubeconfig"))
    }
    pub fn log(&self) -> PathBuf {
        self.daemon.spec().log.clone()
    }
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// kubectl as the admin, run in the underlay namespace.
    pub fn kubectl(&self) -> Result<Command, LabError> {
        self.kubectl_with(&self.admin_kubeconfig())
    }

    /// Runs admin kubectl with `args` (and `stdin`, if any) to the end:
    /// its stdout, or one line naming the call with kubectl's stderr.
    pub fn kubectl_run(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        let mut c = self.kubectl().map_err(|e| e.to_string())?;
        c.args(args);
        crate::kubectl::success(args, crate::kubectl::run(c, stdin)?)
    }

    /// kubectl with any kubeconfig (a node's, or one a test wrote).
    pub fn kubectl_with(&self, kubeconfig: &Path) -> Result<Command, LabError> {
        let program = crate::privileged::which("kubectl").ok_or_else(|| {
            LabError::Other("kubectl not found: deploy/local/install-deps.sh".into())
        })?;
        let mut c = self.command(program)?;
        c.arg("--kubeconfig").arg(kubeconfig);
        Ok(c)
    }

    /// Any program in the namespace the server listens in (curl, a test
    /// binary): it reaches the server and etcd like an external client.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Result<Command, LabError> {
        Netns::existing(&self.underlay)?.command(program)
    }

    /// Graceful stop (SIGTERM) and start with the same flags and data.
    pub fn restart(&mut self) -> Result<(), LabError> {
        self.daemon.stop(Duration::from_secs(10));
        self.daemon = Daemon::start(self.daemon.spec().clone())?;
        self.wait_ready()
    }

    /// SIGKILL (a crash) and start again.
    pub fn crash_and_restart(&mut self) -> Result<(), LabError> {
        self.daemon.kill();
        self.daemon = Daemon::start(self.daemon.spec().clone())?;
        self.wait_ready()
    }

    pub fn is_running(&mut self) -> bool {
        self.daemon.is_running()
    }

    fn wait_ready(&mut self) -> Result<(), LabError> {
        let probe = self.readyz_probe()?;
        let mut probe = Some(probe);
        self.daemon.wait_ready(READY_TIMEOUT, || {
            let Some(p) = probe.as_mut() else {
                return false;
            };
            p.output()
                .is_ok_and(|o| o.status.success() && o.stdout == b"ok")
        })
    }

    fn readyz_probe(&self) -> Result<Command, LabError> {
        let curl = crate::privileged::which("curl").ok_or_else(|| {
            LabError::Other("curl not found: deploy/local/install-deps.sh".into())
        })?;
        let mut c = self.command(curl)?;
        c.args(["-sf", "--max-time", "2", "--cacert"])
            .arg(self.ca_cert())
            .arg(format!("{}/readyz", self.server()));
        Ok(c)
    }
}
