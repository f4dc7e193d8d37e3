//! Long-running processes the lab starts (etcd, containerd, agents): spawned
//! inside a namespace, detached in their own session so a persistent cluster
//! outlives the command that made it, logged to a file, stopped on drop.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::netns::Netns;
use crate::LabError;

/// Everything needed to start (and restart) a daemon the same way.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DaemonSpec {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Network namespace to run in (None: the caller's).
    pub netns: Option<String>,
    /// Mount namespace file to run in (a node's, `mntns.rs`; None: the
    /// caller's). Recorded with the network namespace so a restart enters
    /// both again.
    #[serde(default)]
    pub mntns: Option<PathBuf>,
    pub log: PathBuf,
}

/// A running daemon. Stopped on drop unless `keep` was called.
#[derive(Debug)]
pub struct Daemon {
    spec: DaemonSpec,
    pid: u32,
    child: Option<std::process::Child>,
    keep: bool,
}

impl Daemon {
    pub fn start(spec: DaemonSpec) -> Result<Self, LabError> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)
            .map_err(LabError::io(format!("open log {}", spec.log.display())))?;
        let log2 = log.try_clone().map_err(LabError::io("clone log handle"))?;
        let mut cmd = Command::new(&spec.program);
        cmd.args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        if let Some(ns) = &spec.netns {
            Netns::existing(ns)?.enter_on_exec(&mut cmd)?;
        }
        if let Some(m) = &spec.mntns {
            crate::mntns::enter_on_exec(m, &mut cmd)?;
        }
        // SAFETY: only async-signal-safe syscalls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(LabError::io(format!("start {}", spec.name)))?;
        tracing::debug!(daemon = %spec.name, pid = child.id(), "started");
        Ok(Daemon {
            pid: child.id(),
            child: Some(child),
            spec,
            keep: false,
        })
    }

    /// Re-attaches to a daemon started by an earlier process (persistent
    /// clusters); it is not stopped on drop.
    pub fn adopt(spec: DaemonSpec, pid: u32) -> Self {
        Daemon {
            spec,
            pid,
            child: None,
            keep: true,
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn spec(&self) -> &DaemonSpec {
        &self.spec
    }

    pub fn is_running(&mut self) -> bool {
        if let Some(child) = &mut self.child {
            return matches!(child.try_wait(), Ok(None));
        }
        process_alive(self.pid)
    }

    /// Leaves the daemon running when this handle is dropped.
    pub fn keep(&mut self) {
        self.keep = true;
    }

    /// Waits until `ready` answers true, failing early if the daemon dies.
    pub fn wait_ready(
        &mut self,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), LabError> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(2);
        loop {
            if ready() {
                return Ok(());
            }
            if !self.is_running() {
                return Err(LabError::DaemonDied {
                    daemon: self.spec.name.clone(),
                    log_tail: log_tail(&self.spec.log, 20),
                });
            }
            if Instant::now() >= deadline {
                return Err(LabError::DaemonTimeout {
                    daemon: self.spec.name.clone(),
                    seconds: timeout.as_secs(),
                    log_tail: log_tail(&self.spec.log, 20),
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then SIGKILL after `grace`; reaps the process.
    pub fn stop(&mut self, grace: Duration) {
        terminate(self.pid, grace);
        if let Some(child) = &mut self.child {
            let _ = child.wait();
        }
    }

    /// SIGKILL at once (a crash, for restart tests).
    pub fn kill(&mut self) {
        signal(self.pid, libc::SIGKILL);
        wait_exit(self.pid, Duration::from_secs(5));
        if let Some(child) = &mut self.child {
            let _ = child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if !self.keep {
            self.stop(Duration::from_secs(5));
        }
    }
}

pub(crate) fn signal(pid: u32, sig: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: plain syscall; a vanished pid is harmless (ESRCH).
    unsafe {
        libc::kill(pid, sig);
    }
}

pub fn process_alive(pid: u32) -> bool {
    // A zombie still has a /proc entry; it counts as gone.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits for `pid` to exit using a pidfd (no polling); true if it exited.
pub(crate) fn wait_exit(pid: u32, timeout: Duration) -> bool {
    // SAFETY: pidfd_open has no memory arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_long, 0) };
    if fd < 0 {
        return !process_alive(pid);
    }
    let fd = fd as libc::c_int;
    let deadline = Instant::now() + timeout;
    loop {
        if !process_alive(pid) {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // The pidfd is readable once the process has exited; a zombie child
        // of ours also counts, which process_alive treats as gone.
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as libc::c_int) };
    }
    // SAFETY: closing the descriptor we opened.
    unsafe { libc::close(fd) };
    !process_alive(pid)
}

pub(crate) fn terminate(pid: u32, grace: Duration) {
    signal(pid, libc::SIGTERM);
    if !wait_exit(pid, grace) {
        signal(pid, libc::SIGKILL);
        wait_exit(pid, Duration::from_secs(5));
    }
}

/// The last `n` lines of a log file, for error messages.
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
