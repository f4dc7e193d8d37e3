//! Disk and PID pressure: the writer is evicted, then the forker.

use std::path::Path;
use std::time::{Duration, Instant};

use libtest_mimic::Failed;
use serde_json::Value;

use crate::manifests::*;
use crate::pressure::*;
use crate::suite::*;
use crate::support::*;

/// Tasks on the machine now (what pid.available subtracts from the limit).
pub fn tasks_now() -> Result<i64, Failed> {
    let t = std::fs::read_to_string("/proc/loadavg")?;
    t.split_whitespace()
        .nth(3)
        .and_then(|f| f.split_once('/'))
        .and_then(|(_, n)| n.parse().ok())
        .ok_or_else(|| format!("no task count in /proc/loadavg: {t}").into())
}

pub fn pid_limit() -> Result<i64, Failed> {
    let read =
        |p: &str| -> Result<i64, Failed> { Ok(std::fs::read_to_string(p)?.trim().parse::<i64>()?) };
    Ok(read("/proc/sys/kernel/pid_max")?.min(read("/proc/sys/kernel/threads-max")?))
}

pub fn fs_available(path: &Path) -> Result<i64, Failed> {
    let st = nix::sys::statvfs::statvfs(path).map_err(|e| e.to_string())?;
    Ok(st.blocks_available() as i64 * st.fragment_size() as i64)
}

pub const FORKS: i64 = 400;
pub const FILL_MIB: i64 = 400;

/// Disk and PID pressure from real readings, without filling the host:
/// a first agent starts `quiet`, `writer` (writes 400Mi into its emptyDir,
/// 32Mi into its writable layer)
/// and `forker` (400 sleeping processes). Then the agent restarts with
/// thresholds just above what is available now (`nodefs.available <
/// free + 200Mi`, `pid.available < free PIDs + 200`), so both pressures
/// hold until the heavy pods are gone, and clear with a 200Mi / 200-task
/// margin for the rest of the machine. The restarted agent adopts the
/// pods (under pressure it would refuse them as new), evicts the writer
/// first (disk before PIDs, most storage), removes its emptyDir, then the
/// forker (most processes), each with kubelet's message and an Event;
/// `quiet` keeps running; a new pod meanwhile is refused ("The node had
/// condition: ...").
pub fn disk_and_pid_eviction(s: &Suite) -> Result<(), Failed> {
    let t0 = Instant::now();
    let mut pa = PressureAgent::start(
        s,
        &[
            "--eviction-hard=memory.available<100Mi".into(),
            "--eviction-pressure-transition-period=3s".into(),
        ],
    )?;
    let empty_dir = "  volumes:\n  - name: data\n    emptyDir: {}";
    let mount = "    volumeMounts:\n    - name: data\n      mountPath: /data";
    pa.apply(&pod_manifest("quiet", 0, "sleep 3600", "", ""))?;
    pa.apply(&pod_manifest(
        "writer",
        0,
        &format!("dd if=/dev/zero of=/data/fill bs=1M count={FILL_MIB} && dd if=/dev/zero of=/tmp/layer bs=1M count=32 && sync && touch /data/done && sleep 3600"),
        mount,
        empty_dir,
    ))?;
    pa.apply(&pod_manifest(
        "forker",
        0,
        &format!("for i in $(seq {FORKS}); do sleep 3600 & done; wait"),
        "",
        "",
    ))?;
    let uid = |name: &str| -> String {
        pa.get(&["pod", name])
            .and_then(|p| p["metadata"]["uid"].as_str().map(str::to_string))
            .unwrap_or_default()
    };
    pa.wait_pod("quiet", "Running", Duration::from_secs(20), pod_running)?;
    let (writer, forker) = (uid("writer"), uid("forker"));
    let done = pa
        .root()
        .join(format!("pods/{writer}/volumes/empty-dir/data/done"));
    let procs = Path::new("/sys/fs/cgroup/pids")
        .join(pa.cgroup_root())
        .join(format!("pod{forker}/pids.current"));
    wait_for(
        "writer filled its emptyDir, forker forked",
        Duration::from_secs(30),
        || {
            done.exists()
                && std::fs::read_to_string(&procs)
                    .ok()
                    .and_then(|t| t.trim().parse::<i64>().ok())
                    .is_some_and(|n| n > FORKS)
        },
    )
    .map_err(|e| pa.with_log(e))?;

    let free = fs_available(&pa.root())?;
    let free_pids = pid_limit()? - tasks_now()?;
    pa.restart(&[
        format!(
            "--eviction-hard=memory.available<100Mi,nodefs.available<{},pid.available<{}",
            free + (200 << 20),
            free_pids + 200
        ),
        "--eviction-pressure-transition-period=3s".into(),
    ])?;
    // imagefs is containerd's snapshotter root (here on the same disk).
    let log_path = s.dir().join(format!("logs/{}.log", pa.log_name));
    wait_for(
        "imagefs = containerd's snapshotter root",
        Duration::from_secs(10),
        || {
            std::fs::read_to_string(&log_path).is_ok_and(|log| {
                log.lines().any(|l| {
                    l.contains("filesystems for eviction")
                        && l.contains("io.containerd.snapshotter.v1.overlayfs")
                })
            })
        },
    )
    .map_err(|e| pa.with_log(e))?;
    let writer_pod = pa.wait_pod("writer", "evicted", Duration::from_secs(20), |p| {
        p["status"]["phase"] == "Failed"
    })?;
    let msg = writer_pod["status"]["message"].as_str().unwrap_or("");
    check(
        writer_pod["status"]["reason"] == "Evicted"
            && msg.starts_with(
                "The node was low on resource: ephemeral-storage. Threshold quantity: ",
            )
            // Its writable layer (32Mi in /tmp) and logs: containerd's
            // snapshot usage.
            && msg.contains("Container main was using ")
            && msg.ends_with("request is 0, has larger consumption of ephemeral-storage. "),
        format!("writer: {}", writer_pod["status"]),
    )?;
    eprintln!("writer: {msg}");
    check(
        pa.event("writer", "Evicted")
            .is_some_and(|e| e["message"] == msg),
        "no Evicted event for the writer",
    )?;
    // Under pressure a new pod is refused.
    pa.apply(&pod_manifest("late", 0, "sleep 3600", &cpu_request(10), ""))?;
    let late = pa.wait_pod("late", "refused", Duration::from_secs(15), |p| {
        p["status"]["phase"] == "Failed"
    })?;
    check(
        late["status"]["reason"] == "Evicted"
            && late["status"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Pod was rejected: The node had condition: [")),
        format!("late pod: {}", late["status"]),
    )?;
    let forker_pod = pa.wait_pod("forker", "evicted", Duration::from_secs(45), |p| {
        p["status"]["phase"] == "Failed"
    })?;
    let msg = forker_pod["status"]["message"].as_str().unwrap_or("");
    check(
        forker_pod["status"]["reason"] == "Evicted"
            && msg.starts_with("The node was low on resource: pids. Threshold quantity: "),
        format!("forker: {}", forker_pod["status"]),
    )?;
    eprintln!("forker: {msg}");
    check(
        !done.exists(),
        "the evicted writer's emptyDir is still there",
    )?;
    let mut n = Value::Null;
    wait_for(
        "DiskPressure and PIDPressure False again",
        Duration::from_secs(20),
        || {
            n = pa.node();
            condition(&n, "DiskPressure") == "False" && condition(&n, "PIDPressure") == "False"
        },
    )
    .map_err(|e| pa.with_log(e))?;
    let quiet = pa.get(&["pod", "quiet"]).unwrap_or_default();
    check(
        pod_running(&quiet) && quiet["status"]["containerStatuses"][0]["restartCount"] == 0,
        format!("quiet pod disturbed: {}", quiet["status"]),
    )?;
    eprintln!("disk and pid eviction: {:?} in all", t0.elapsed());
    pa.remove_pods().map_err(|e| pa.with_log(e))
}
