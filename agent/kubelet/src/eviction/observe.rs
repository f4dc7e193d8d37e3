//! What the eviction manager measures, as kubelet's summary stats define
//! it: the node's memory working set (/proc/meminfo), each pod's memory
//! working set (usage − inactive file, from its memory cgroup, v1 or v2),
//! the filesystems (statvfs) and process IDs; and the pieces `usage`
//! measures pods with when one must be chosen (du of a directory, a pod's
//! process count from its pids cgroup). Reads only; the text parsers are
//! pure and tested without a machine.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::eviction::threshold::Signal;

/// Where the memory controller lives on this machine.
const CGROUP_V1_MEMORY: &str = "/sys/fs/cgroup/memory";
const CGROUP_V2: &str = "/sys/fs/cgroup";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    pub capacity: i64,
    pub working_set: i64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fs {
    pub capacity: i64,
    pub available: i64,
    pub inodes: i64,
    pub inodes_free: i64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pids {
    pub limit: i64,
    pub running: i64,
}

/// One observation of the node, taken at one moment.
#[derive(Clone, Debug, Default)]
pub struct Observations {
    pub memory: Option<Memory>,
    /// Memory working set per pod UID (pods without a cgroup are absent).
    pub pods: HashMap<String, i64>,
    pub nodefs: Option<Fs>,
    pub imagefs: Option<Fs>,
    pub pids: Option<Pids>,
}

/// A signal's current value and the capacity its percentages refer to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reading {
    pub available: i64,
    pub capacity: i64,
}

fn kib_field(meminfo: &str, key: &str) -> Option<i64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<i64>().ok())
        .map(|k| k * 1024)
}

/// The node's working set the way cAdvisor counts the root cgroup: all
/// memory in use (MemTotal − MemFree) less the inactive page cache the
/// kernel can drop at once.
pub fn parse_meminfo(text: &str) -> Option<Memory> {
    let total = kib_field(text, "MemTotal")?;
    let free = kib_field(text, "MemFree")?;
    let inactive_file = kib_field(text, "Inactive(file)").unwrap_or(0);
    Some(Memory {
        capacity: total,
        working_set: (total - free - inactive_file).max(0),
    })
}

/// A `key value` line of a cgroup's memory.stat.
pub fn stat_field(stat: &str, key: &str) -> Option<i64> {
    stat.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// usage − inactive_file, never negative (kubelet's working set).
pub fn working_set(usage: i64, inactive_file: i64) -> i64 {
    (usage - inactive_file).max(0)
}

/// Working set of the memory cgroup at `relative` (below the hierarchy
/// root): cgroup v1's memory controller if mounted, else cgroup v2.
pub fn cgroup_working_set(relative: &str) -> Option<i64> {
    let rel = relative.trim_matches('/');
    let v1 = Path::new(CGROUP_V1_MEMORY).join(rel);
    if v1.is_dir() {
        let usage = read_i64(&v1.join("memory.usage_in_bytes"))?;
        let stat = std::fs::read_to_string(v1.join("memory.stat")).ok()?;
        return Some(working_set(
            usage,
            stat_field(&stat, "total_inactive_file").unwrap_or(0),
        ));
    }
    let v2 = Path::new(CGROUP_V2).join(rel);
    let usage = read_i64(&v2.join("memory.current"))?;
    let stat = std::fs::read_to_string(v2.join("memory.stat")).ok()?;
    Some(working_set(
        usage,
        stat_field(&stat, "inactive_file").unwrap_or(0),
    ))
}

/// Whether the cgroup at `relative` exists (v1 memory controller or v2).
pub fn cgroup_exists(relative: &str) -> bool {
    let rel = relative.trim_matches('/');
    Path::new(CGROUP_V1_MEMORY).join(rel).is_dir() || Path::new(CGROUP_V2).join(rel).is_dir()
}

/// Whether any process is left in the cgroup at `relative` or below it
/// (an evicted pod is gone once this is false).
pub fn cgroup_has_processes(relative: &str) -> bool {
    fn walk(dir: &Path) -> bool {
        let here =
            std::fs::read_to_string(dir.join("cgroup.procs")).is_ok_and(|t| !t.trim().is_empty());
        here || std::fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .any(|e| walk(&e.path()))
        })
    }
    let rel = relative.trim_matches('/');
    let v1 = Path::new(CGROUP_V1_MEMORY).join(rel);
    if v1.is_dir() {
        return walk(&v1);
    }
    walk(&Path::new(CGROUP_V2).join(rel))
}

/// Disk blocks and inodes under `dir` (du's way: allocated blocks, every
/// entry one inode; symlinks not followed, hard links counted once each
/// time they are met).
pub fn du(dir: &Path) -> (i64, i64) {
    use std::os::unix::fs::MetadataExt;
    let (mut bytes, mut inodes) = (0i64, 0i64);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&d) else {
            continue;
        };
        bytes += meta.blocks() as i64 * 512;
        inodes += 1;
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&d) {
                stack.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
            }
        }
    }
    (bytes, inodes)
}

/// Tasks in the pod's cgroup: the pids controller's count (v1, else v2),
/// else the tasks listed in its memory cgroup and below.
pub fn pod_processes(cgroup_root: &str, uid: &str) -> Option<i64> {
    let rel = pod_cgroup(cgroup_root, uid);
    for base in ["/sys/fs/cgroup/pids", CGROUP_V2] {
        if let Some(n) = read_i64(&Path::new(base).join(&rel).join("pids.current")) {
            return Some(n);
        }
    }
    fn count(dir: &Path) -> i64 {
        let here = std::fs::read_to_string(dir.join("tasks"))
            .map(|t| t.lines().filter(|l| !l.trim().is_empty()).count() as i64)
            .unwrap_or(0);
        here + std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| count(&e.path()))
                    .sum()
            })
            .unwrap_or(0)
    }
    let v1 = Path::new(CGROUP_V1_MEMORY).join(&rel);
    v1.is_dir().then(|| count(&v1))
}

fn read_i64(p: &Path) -> Option<i64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// The pod-level cgroup the pod worker puts a pod's containers under.
pub fn pod_cgroup(cgroup_root: &str, uid: &str) -> String {
    format!("{}/pod{uid}", cgroup_root.trim_matches('/'))
}

pub fn fs(path: &Path) -> Option<Fs> {
    let s = nix::sys::statvfs::statvfs(path).ok()?;
    let frag = s.fragment_size() as i64;
    Some(Fs {
        capacity: s.blocks() as i64 * frag,
        available: s.blocks_available() as i64 * frag,
        inodes: s.files() as i64,
        inodes_free: s.files_free() as i64,
    })
}

/// Tasks that exist now: the total after the slash in /proc/loadavg's
/// fourth field (what sysinfo(2) calls procs).
pub fn parse_loadavg_tasks(text: &str) -> Option<i64> {
    text.split_whitespace()
        .nth(3)?
        .split_once('/')?
        .1
        .parse()
        .ok()
}

/// Reads everything once. `pods` are the UIDs of pods this kubelet runs.
pub fn read(cgroup_root: &str, pods: &[String], nodefs: &Path, imagefs: &Path) -> Observations {
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| parse_meminfo(&t));
    let pods = pods
        .iter()
        .filter_map(|uid| {
            Some((
                uid.clone(),
                cgroup_working_set(&pod_cgroup(cgroup_root, uid))?,
            ))
        })
        .collect();
    let pids = match (
        crate::node::resources::pid_limit(),
        std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|t| parse_loadavg_tasks(&t)),
    ) {
        (Some(limit), Some(running)) => Some(Pids { limit, running }),
        _ => None,
    };
    Observations {
        memory,
        pods,
        nodefs: fs(nodefs),
        imagefs: fs(imagefs),
        pids,
    }
}

/// Every signal's reading. `allocatable_memory` is the Node's allocatable
/// memory; its signal subtracts the pods' working sets from it (kubelet's
/// allocatableMemory.available).
pub fn signals(o: &Observations, allocatable_memory: Option<i64>) -> BTreeMap<Signal, Reading> {
    let mut out = BTreeMap::new();
    if let Some(m) = o.memory {
        out.insert(
            Signal::MemoryAvailable,
            Reading {
                available: m.capacity - m.working_set,
                capacity: m.capacity,
            },
        );
    }
    if let Some(a) = allocatable_memory {
        let used: i64 = o.pods.values().sum();
        out.insert(
            Signal::AllocatableMemoryAvailable,
            Reading {
                available: a - used,
                capacity: a,
            },
        );
    }
    let mut fs_signals = |f: Option<Fs>, bytes: Signal, inodes: Signal| {
        if let Some(f) = f {
            out.insert(
                bytes,
                Reading {
                    available: f.available,
                    capacity: f.capacity,
                },
            );
            out.insert(
                inodes,
                Reading {
                    available: f.inodes_free,
                    capacity: f.inodes,
                },
            );
        }
    };
    fs_signals(o.nodefs, Signal::NodeFsAvailable, Signal::NodeFsInodesFree);
    fs_signals(
        o.imagefs,
        Signal::ImageFsAvailable,
        Signal::ImageFsInodesFree,
    );
    if let Some(p) = o.pids {
        out.insert(
            Signal::PidAvailable,
            Reading {
                available: p.limit - p.running,
                capacity: p.limit,
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:       24683520 kB\nMemFree:        19088384 kB\nMemAvailable:   22358016 kB\nActive(file):    1000000 kB\nInactive(file):  1500000 kB\n";

    #[test]
    fn node_working_set_leaves_out_inactive_file() {
        let m = parse_meminfo(MEMINFO).unwrap();
        assert_eq!(m.capacity, 24_683_520 * 1024);
        assert_eq!(m.working_set, (24_683_520 - 19_088_384 - 1_500_000) * 1024);
        assert!(parse_meminfo("MemFree: 1 kB\n").is_none());
    }

    #[test]
    fn memory_stat_fields() {
        let v1 = "cache 4096\nrss 1000\ninactive_file 10\ntotal_inactive_file 2048\n";
        assert_eq!(stat_field(v1, "total_inactive_file"), Some(2048));
        assert_eq!(stat_field(v1, "inactive_file"), Some(10));
        assert_eq!(stat_field(v1, "missing"), None);
        assert_eq!(working_set(10_000, 2048), 7952);
        assert_eq!(working_set(1000, 2048), 0);
        assert_eq!(pod_cgroup("/capstan/", "abc"), "capstan/podabc");
        assert_eq!(
            parse_loadavg_tasks("0.10 0.20 0.30 2/345 6789\n"),
            Some(345)
        );
        assert_eq!(parse_loadavg_tasks("garbage"), None);
    }

    #[test]
    fn du_counts_blocks_and_inodes() {
        let dir = std::env::temp_dir().join(format!("capstan-du-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/a"), vec![1u8; 64 << 10]).unwrap();
        std::fs::write(dir.join("b"), b"x").unwrap();
        let (bytes, inodes) = du(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(inodes, 4);
        assert!(bytes >= 64 << 10, "{bytes}");
        assert_eq!(du(&dir), (0, 0));
    }

    #[test]
    fn signals_from_observations() {
        let o = Observations {
            memory: Some(Memory {
                capacity: 1000,
                working_set: 300,
            }),
            pods: HashMap::from([("a".into(), 150), ("b".into(), 50)]),
            nodefs: Some(Fs {
                capacity: 100,
                available: 7,
                inodes: 50,
                inodes_free: 40,
            }),
            imagefs: None,
            pids: Some(Pids {
                limit: 1000,
                running: 900,
            }),
        };
        let s = signals(&o, Some(250));
        assert_eq!(s[&Signal::MemoryAvailable].available, 700);
        assert_eq!(s[&Signal::AllocatableMemoryAvailable].available, 50);
        assert_eq!(s[&Signal::AllocatableMemoryAvailable].capacity, 250);
        assert_eq!(s[&Signal::NodeFsAvailable].available, 7);
        assert_eq!(s[&Signal::NodeFsInodesFree].capacity, 50);
        assert!(!s.contains_key(&Signal::ImageFsAvailable));
        assert_eq!(s[&Signal::PidAvailable].available, 100);
        assert!(!signals(&o, None).contains_key(&Signal::AllocatableMemoryAvailable));
    }
}
