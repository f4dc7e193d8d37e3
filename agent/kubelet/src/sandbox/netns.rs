//! The pod's namespaces as files: network, IPC and UTS namespaces made on
//! a short-lived thread and bind-mounted to `<dir>/<prefix><sandbox>` (and
//! `.ipc`, `.uts`), so containers join them by path and they outlive the
//! agent. Never enters a namespace on a thread it does not own.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodNamespaces {
    pub net: Option<PathBuf>,
    pub ipc: PathBuf,
    pub uts: PathBuf,
}

pub fn paths(dir: &Path, name: &str, host_network: bool) -> PodNamespaces {
    PodNamespaces {
        net: (!host_network).then(|| dir.join(name)),
        ipc: dir.join(format!("{name}.ipc")),
        uts: dir.join(format!("{name}.uts")),
    }
}

fn is_mounted(path: &Path) -> bool {
    // A bind-mounted nsfs file reports the nsfs magic; a plain file does not.
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
        .unwrap_or(false)
}

/// Makes the namespaces (idempotent: existing mounts are kept) and sets
/// the UTS namespace's host name.
pub fn create(ns: &PodNamespaces, hostname: &str) -> Result<()> {
    let mut want: Vec<(CloneFlags, &'static str, PathBuf)> = Vec::new();
    if let Some(net) = &ns.net {
        if !is_mounted(net) {
            want.push((CloneFlags::CLONE_NEWNET, "net", net.clone()));
        }
    }
    if !is_mounted(&ns.ipc) {
        want.push((CloneFlags::CLONE_NEWIPC, "ipc", ns.ipc.clone()));
    }
    if !is_mounted(&ns.uts) {
        want.push((CloneFlags::CLONE_NEWUTS, "uts", ns.uts.clone()));
    }
    if want.is_empty() {
        return Ok(());
    }
    for (_, _, p) in &want {
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).map_err(Error::io("create namespace dir", d))?;
        }
        std::fs::File::create(p).map_err(Error::io("create namespace file", p))?;
    }
    let hostname = hostname.to_string();
    let job = move || -> Result<()> {
        let flags = want.iter().fold(CloneFlags::empty(), |a, (f, _, _)| a | *f);
        unshare(flags).map_err(|source| Error::Namespace {
            op: "unshare",
            path: PathBuf::new(),
            source,
        })?;
        if flags.contains(CloneFlags::CLONE_NEWUTS) {
            nix::unistd::sethostname(&hostname).map_err(|source| Error::Namespace {
                op: "sethostname",
                path: PathBuf::new(),
                source,
            })?;
        }
        for (_, kind, target) in &want {
            let src = format!("/proc/thread-self/ns/{kind}");
            mount(
                Some(src.as_str()),
                target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|source| Error::Namespace {
                op: "bind-mount",
                path: target.clone(),
                source,
            })?;
        }
        Ok(())
    };
    // The thread is thrown away afterwards: it now lives in the pod's
    // namespaces and must never run anything else.
    std::thread::spawn(job).join().unwrap_or_else(|_| {
        Err(Error::Config {
            pod: hostname_for_error(),
            message: "namespace thread panicked".into(),
        })
    })
}

fn hostname_for_error() -> String {
    "namespace setup".into()
}

/// Unmounts and removes the namespace files; what is gone is not an error.
pub fn remove(ns: &PodNamespaces) -> Result<()> {
    for p in ns.net.iter().chain([&ns.ipc, &ns.uts]) {
        remove_file(p)?;
    }
    Ok(())
}

pub fn remove_file(p: &Path) -> Result<()> {
    match umount2(p, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(source) => {
            return Err(Error::Namespace {
                op: "unmount",
                path: p.to_path_buf(),
                source,
            })
        }
    }
    match std::fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove namespace file", p)(e)),
    }
}

pub fn exists(p: &Path) -> bool {
    is_mounted(p)
}
