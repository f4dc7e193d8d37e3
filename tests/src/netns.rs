//! Named network namespaces (the `ip netns` convention: a bind mount under
//! /run/netns) and ways to run code inside one. The lab makes every node, pod
//! and underlay from these; it must never touch the host's own namespace.

use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::LabError;

/// Where `ip netns` keeps named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// A named network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
    keep: bool,
}

impl Netns {
    /// Makes a fresh namespace with loopback up. Fails if the name is taken.
    pub fn create(name: &str) -> Result<Self, LabError> {
        crate::cmd::run(Command::new("ip").args(["netns", "add", name]))?;
        let ns = Netns {
            name: name.to_string(),
            keep: false,
        };
        crate::cmd::run(Command::new("ip").args(["-n", name, "link", "set", "lo", "up"]))?;
        Ok(ns)
    }

    /// Refers to an existing namespace without owning it (not deleted on drop).
    pub fn existing(name: &str) -> Result<Self, LabError> {
        let ns = Netns {
            name: name.to_string(),
            keep: true,
        };
        if !ns.path().exists() {
            return Err(LabError::NoNetns(name.to_string()));
        }
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }

    /// Keeps the namespace after this handle is dropped (persistent clusters).
    pub fn keep(mut self) -> Self {
        self.keep = true;
        self
    }

    /// (device, inode) of the namespace, to recognise processes inside it.
    pub fn id(&self) -> Result<(u64, u64), LabError> {
        let meta = std::fs::metadata(self.path()).map_err(|source| LabError::Io {
            what: format!("stat netns {}", self.name),
            source,
        })?;
        Ok((meta.dev(), meta.ino()))
    }

    /// A `Command` that runs `program` inside this namespace (network only:
    /// the mount view stays the host's, so /sys/fs/cgroup stays visible,
    /// unlike `ip netns exec`).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Result<Command, LabError> {
        let mut cmd = Command::new(program);
        self.enter_on_exec(&mut cmd)?;
        Ok(cmd)
    }

    /// Arranges for `cmd` to switch into this namespace between fork and exec.
    pub fn enter_on_exec(&self, cmd: &mut Command) -> Result<(), LabError> {
        let file = self.open()?;
        // SAFETY: the closure only calls setns(2), which is async-signal-safe,
        // on a descriptor opened before the fork and kept alive by the closure.
        unsafe {
            cmd.pre_exec(move || setns_net(file.as_raw_fd()));
        }
        Ok(())
    }

    /// Runs `f` on a fresh thread that has entered this namespace; sockets it
    /// opens stay in the namespace after they are handed back.
    pub fn run_in<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, LabError> {
        let file = self.open()?;
        let name = self.name.clone();
        std::thread::spawn(move || {
            setns_net(file.as_raw_fd()).map_err(|source| LabError::Io {
                what: format!("setns into {name}"),
                source,
            })?;
            Ok(f())
        })
        .join()
        .map_err(|_| LabError::ThreadPanicked(self.name.clone()))?
    }

    fn open(&self) -> Result<File, LabError> {
        File::open(self.path()).map_err(|source| LabError::Io {
            what: format!("open netns {}", self.name),
            source,
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if !self.keep {
            delete(&self.name);
        }
    }
}

/// Deletes a named namespace; a missing one is not an error.
pub fn delete(name: &str) {
    if Path::new(NETNS_DIR).join(name).exists() {
        let _ = Command::new("ip").args(["netns", "delete", name]).output();
    }
}

/// Names of every namespace under /run/netns that starts with `prefix`
/// (a lab's `<name>-`); `lab::owned_netns` leaves out those of other labs
/// whose names extend this one.
pub fn list_with_prefix(prefix: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

fn setns_net(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: plain syscall on a valid descriptor.
    if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
