//! Removes everything a lab made, from its recorded state alone, so the same
//! code cleans up after a normal drop, a panic, and a crashed earlier run:
//! processes (by namespace, by lab path in their command line, and their
//! descendants), cgroups, mounts, namespaces and the lab's directory.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use crate::daemon::{process_alive, signal, wait_exit};
pub use crate::mounts::{mounts_under, unmount_under};

/// Every pid on the machine with its parent pid.
fn processes() -> HashMap<u32, u32> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.filter_map(|e| e.ok()) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name may hold spaces and parentheses: parse after the last ')'.
        let ppid = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        out.insert(pid, ppid);
    }
    out
}

fn netns_of(pid: u32) -> Option<(u64, u64)> {
    let meta = std::fs::metadata(format!("/proc/{pid}/ns/net")).ok()?;
    Some((meta.dev(), meta.ino()))
}

fn cmdline_mentions(pid: u32, needle: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| mentions_path(&String::from_utf8_lossy(&raw), needle))
        .unwrap_or(false)
}

/// Does `text` name the directory `dir` itself or something below it?
/// `/x/capstan` must not match `/x/capstan-smoke`: another lab's directory.
pub fn mentions_path(text: &str, dir: &str) -> bool {
    text.match_indices(dir).any(|(at, _)| {
        matches!(
            text[at + dir.len()..].chars().next(),
            None | Some('/' | '\0' | ' ')
        )
    })
}

/// Pids that belong to the lab: inside one of its namespaces, or mentioning
/// its directory on the command line (containerd shims), plus all their
/// descendants (containers, which live in namespaces of their own).
pub fn lab_processes(netns_ids: &[(u64, u64)], lab_dir: &Path) -> Vec<u32> {
    let me = std::process::id();
    let needle = lab_dir.to_string_lossy().into_owned();
    let procs = processes();
    let mut roots: HashSet<u32> = procs
        .keys()
        .copied()
        .filter(|&pid| pid != me)
        .filter(|&pid| {
            netns_of(pid).is_some_and(|id| netns_ids.contains(&id))
                || cmdline_mentions(pid, &needle)
        })
        .collect();
    // Close over descendants.
    loop {
        let before = roots.len();
        for (&pid, &ppid) in &procs {
            if roots.contains(&ppid) && pid != me {
                roots.insert(pid);
            }
        }
        if roots.len() == before {
            break;
        }
    }
    let mut list: Vec<u32> = roots.into_iter().collect();
    list.sort_unstable();
    list
}

/// SIGKILLs the lab's processes until none is left (new ones may be forked
/// while we kill, so repeat a few rounds).
pub fn kill_lab_processes(netns_ids: &[(u64, u64)], lab_dir: &Path) {
    for _ in 0..10 {
        let pids = lab_processes(netns_ids, lab_dir);
        if pids.is_empty() {
            return;
        }
        for &pid in &pids {
            signal(pid, libc::SIGKILL);
        }
        for &pid in &pids {
            wait_exit(pid, Duration::from_secs(2));
        }
        reap_children(&pids);
    }
}

/// Reaps any of `pids` that are our own children so they do not linger as
/// zombies (which would still show in /proc).
fn reap_children(pids: &[u32]) {
    for &pid in pids {
        let Ok(p) = libc::pid_t::try_from(pid) else {
            continue;
        };
        // SAFETY: non-blocking waitpid; ECHILD for others' processes is fine.
        unsafe {
            libc::waitpid(p, std::ptr::null_mut(), libc::WNOHANG);
        }
    }
}

/// The cgroup directory (relative to each hierarchy) where the lab's
/// containers are placed; removed depth-first in every hierarchy.
pub fn remove_cgroups(relative: &str) {
    let Ok(roots) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for root in roots.filter_map(|e| e.ok()) {
        let dir = root.path().join(relative.trim_start_matches('/'));
        if dir.is_dir() {
            rmdir_tree(&dir);
        }
        // The shared parent goes too once no other lab uses it (rmdir of a
        // non-empty cgroup fails harmlessly).
        if let Some(parent) = dir.parent().filter(|p| *p != root.path()) {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

fn rmdir_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.filter_map(|e| e.ok()) {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                rmdir_tree(&e.path());
            }
        }
    }
    // cgroup directories are removed with rmdir, never by deleting files.
    let _ = std::fs::remove_dir(dir);
}

/// True if a process with this pid and start time still runs (guards
/// against pid reuse when deciding whether a lab's owner is gone).
pub fn owner_alive(pid: u32, start_time: u64) -> bool {
    process_alive(pid) && process_start_time(pid) == Some(start_time)
}

pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    // Field 22 overall is starttime; `rest` starts at field 3.
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lab_directory_is_not_a_prefix_of_another_labs() {
        let d = "/var/lib/capstan-lab/capstan";
        assert!(mentions_path(
            "containerd\0--root\0/var/lib/capstan-lab/capstan/node-1",
            d
        ));
        assert!(mentions_path("x\0/var/lib/capstan-lab/capstan", d));
        assert!(!mentions_path(
            "x\0/var/lib/capstan-lab/capstan-smoke/node-1",
            d
        ));
    }
}
