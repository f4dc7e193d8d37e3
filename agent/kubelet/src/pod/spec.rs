//! Builds the OCI runtime spec (config.json) for one container from what
//! the pod worker decided: process, namespaces to join, mounts, cgroup and
//! security settings. Pure data in, JSON out; never talks to containerd.

use capstan_k8s::quantity;
use k8s_openapi::api::core::v1::ResourceRequirements;
use serde_json::{json, Value};

/// containerd's default capability set for unprivileged containers.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability the kernel knows by name, in number order (bit i of a
/// capability mask is `ALL_CAPS[i]`).
const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

#[derive(Clone, Debug, PartialEq)]
pub struct BindMount {
    pub destination: String,
    pub source: String,
    pub read_only: bool,
}

/// cgroup limits derived from the container's resources.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Limits {
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub memory_bytes: Option<i64>,
}

#[derive(Clone, Debug, Default)]
pub struct SpecInput {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub hostname: String,
    pub mounts: Vec<BindMount>,
    /// Namespace files to join; None makes a new one (net None with
    /// `host_network` keeps the runtime's own, i.e. the node's).
    pub net_ns: Option<String>,
    pub host_network: bool,
    pub ipc_ns: Option<String>,
    pub uts_ns: Option<String>,
    pub cgroups_path: String,
    pub privileged: bool,
    pub caps_add: Vec<String>,
    pub caps_drop: Vec<String>,
    pub read_only_rootfs: bool,
    pub no_new_privileges: bool,
    pub limits: Limits,
}

fn cap_name(c: &str) -> String {
    let up = c.to_ascii_uppercase();
    if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

/// The capabilities in `mask` (a CapBnd-style bit set), by name.
fn caps_in(mask: u64) -> Vec<String> {
    ALL_CAPS
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1u64 << i) != 0)
        .map(|(_, c)| c.to_string())
        .collect()
}

/// This process's capability bounding set (all when unreadable).
fn bounding_set() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let hex = s.lines().find_map(|l| l.strip_prefix("CapBnd:"))?;
            u64::from_str_radix(hex.trim(), 16).ok()
        })
        .unwrap_or(u64::MAX)
}

/// "All capabilities" for a privileged container, as containerd's
/// WithAllCurrentCapabilities gives it: those the agent itself may hold.
/// A capability outside its bounding set (a machine or outer container
/// without CAP_SYS_RESOURCE, say) would make runc fail the container with
/// "unable to apply caps: operation not permitted".
fn all_current() -> Vec<String> {
    caps_in(bounding_set())
}

/// The capability set after add/drop ("ALL" allowed in both).
pub fn capabilities(privileged: bool, add: &[String], drop: &[String]) -> Vec<String> {
    if privileged {
        return all_current();
    }
    let mut caps: Vec<String> = DEFAULT_CAPS.iter().map(|s| s.to_string()).collect();
    let add: Vec<String> = add.iter().map(|c| cap_name(c)).collect();
    let drop: Vec<String> = drop.iter().map(|c| cap_name(c)).collect();
    if drop.iter().any(|c| c == "CAP_ALL") {
        caps.clear();
    }
    if add.iter().any(|c| c == "CAP_ALL") {
        caps = all_current();
    }
    for c in add.into_iter().filter(|c| c != "CAP_ALL") {
        if !caps.contains(&c) {
            caps.push(c);
        }
    }
    caps.retain(|c| !drop.contains(c));
    caps
}

/// cpu request → shares, cpu limit → quota over a 100 ms period, memory
/// limit → bytes (kubelet's conversions).
pub fn limits(res: Option<&ResourceRequirements>) -> Limits {
    let Some(res) = res else {
        return Limits::default();
    };
    let get = |m: &Option<
        std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >,
               k: &str,
               milli: bool| {
        m.as_ref()
            .and_then(|m| m.get(k))
            .and_then(|q| quantity::parse(&q.0, milli))
    };
    let cpu_req = get(&res.requests, "cpu", true).or(get(&res.limits, "cpu", true));
    let cpu_lim = get(&res.limits, "cpu", true);
    let mem_lim = get(&res.limits, "memory", false);
    const PERIOD: u64 = 100_000;
    Limits {
        cpu_shares: cpu_req.map(|m| ((m * 1024) / 1000).max(2) as u64),
        cpu_quota: cpu_lim.map(|m| ((m * PERIOD as i128) / 1000).max(1000) as i64),
        cpu_period: cpu_lim.map(|_| PERIOD),
        memory_bytes: mem_lim.map(|b| b as i64),
    }
}

pub fn build(input: &SpecInput) -> Value {
    let caps = capabilities(input.privileged, &input.caps_add, &input.caps_drop);
    let mut namespaces = vec![json!({"type": "pid"}), json!({"type": "mount"})];
    let ns = |kind: &str, path: &Option<String>| match path {
        Some(p) => json!({"type": kind, "path": p}),
        None => json!({"type": kind}),
    };
    if !input.host_network {
        namespaces.push(ns("network", &input.net_ns));
    }
    namespaces.push(ns("ipc", &input.ipc_ns));
    namespaces.push(ns("uts", &input.uts_ns));
    let sys_opts = if input.privileged {
        json!(["nosuid", "noexec", "nodev"])
    } else {
        json!(["nosuid", "noexec", "nodev", "ro"])
    };
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_opts}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ];
    for m in &input.mounts {
        let mut opts = vec!["rbind", "rprivate"];
        opts.push(if m.read_only { "ro" } else { "rw" });
        mounts.push(json!({"destination": m.destination, "type": "bind", "source": m.source, "options": opts}));
    }
    let mut resources = json!({
        "devices": [{"allow": input.privileged, "access": "rwm"}],
    });
    let l = &input.limits;
    let mut cpu = serde_json::Map::new();
    if let Some(s) = l.cpu_shares {
        cpu.insert("shares".into(), json!(s));
    }
    if let Some(q) = l.cpu_quota {
        cpu.insert("quota".into(), json!(q));
    }
    if let Some(p) = l.cpu_period {
        cpu.insert("period".into(), json!(p));
    }
    if !cpu.is_empty() {
        resources["cpu"] = Value::Object(cpu);
    }
    if let Some(m) = l.memory_bytes {
        resources["memory"] = json!({"limit": m});
    }
    let mut linux = json!({
        "namespaces": namespaces,
        "cgroupsPath": input.cgroups_path,
        "resources": resources,
    });
    if !input.privileged {
        linux["maskedPaths"] = json!([
            "/proc/acpi",
            "/proc/asound",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/sys/firmware",
            "/proc/scsi"
        ]);
        linux["readonlyPaths"] = json!([
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger"
        ]);
    }
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": input.uid, "gid": input.gid, "additionalGids": input.additional_gids},
            "args": input.args,
            "env": input.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            "cwd": if input.cwd.is_empty() { "/" } else { input.cwd.as_str() },
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": input.no_new_privileges,
        },
        "root": {"path": "rootfs", "readonly": input.read_only_rootfs},
        "hostname": input.hostname,
        "mounts": mounts,
        "linux": linux,
    })
}

/// The OCI process for an exec (probes, hooks) inside a running container.
pub fn exec_process(args: &[String], env: &[(String, String)], uid: u32, gid: u32) -> Value {
    json!({
        "terminal": false,
        "user": {"uid": uid, "gid": gid},
        "args": args,
        "env": env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        "cwd": "/",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    #[test]
    fn quantities() {
        assert_eq!(quantity::parse("100m", true), Some(100));
        assert_eq!(quantity::parse("0.5", true), Some(500));
        assert_eq!(quantity::parse("2", true), Some(2000));
        assert_eq!(quantity::parse("64Mi", false), Some(64 << 20));
        assert_eq!(quantity::parse("1G", false), Some(1_000_000_000));
        assert_eq!(quantity::parse("1e3", false), Some(1000));
        assert_eq!(quantity::parse("12x", false), None);
    }

    #[test]
    fn resources_become_cgroup_limits() {
        let r = ResourceRequirements {
            requests: Some([("cpu".to_string(), Quantity("250m".into()))].into()),
            limits: Some(
                [
                    ("cpu".to_string(), Quantity("500m".into())),
                    ("memory".to_string(), Quantity("32Mi".into())),
                ]
                .into(),
            ),
            ..Default::default()
        };
        let l = limits(Some(&r));
        assert_eq!(l.cpu_shares, Some(256));
        assert_eq!(l.cpu_quota, Some(50_000));
        assert_eq!(l.cpu_period, Some(100_000));
        assert_eq!(l.memory_bytes, Some(32 << 20));
        assert_eq!(limits(None), Limits::default());
    }

    #[test]
    fn caps_add_drop_privileged() {
        let c = capabilities(false, &["NET_ADMIN".into()], &["KILL".into()]);
        assert!(c.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!c.contains(&"CAP_KILL".to_string()));
        assert!(capabilities(false, &[], &["ALL".into()]).is_empty());
        assert!(capabilities(true, &[], &[]).contains(&"CAP_SYS_ADMIN".to_string()));
    }

    #[test]
    fn privileged_gets_the_agents_own_capabilities_only() {
        // A bounding set without CAP_SYS_RESOURCE (bit 24), as on a machine
        // that itself lacks it.
        let caps = caps_in(0x1ff_feff_ffff);
        assert_eq!(caps.len(), ALL_CAPS.len() - 1);
        assert!(!caps.contains(&"CAP_SYS_RESOURCE".to_string()));
        assert_eq!(caps_in(1 << 21), ["CAP_SYS_ADMIN"]);
        assert_eq!(ALL_CAPS[40], "CAP_CHECKPOINT_RESTORE");
        // The privileged set is this process's, whatever it holds.
        assert_eq!(capabilities(true, &[], &[]), caps_in(bounding_set()));
    }

    #[test]
    fn spec_joins_pod_namespaces_and_sets_limits() {
        let s = build(&SpecInput {
            args: vec!["/bin/sh".into()],
            env: vec![("A".into(), "1".into())],
            uid: 1000,
            gid: 1000,
            hostname: "pod1".into(),
            net_ns: Some("/run/netns/x".into()),
            ipc_ns: Some("/run/netns/x.ipc".into()),
            uts_ns: Some("/run/netns/x.uts".into()),
            cgroups_path: "/lab/pod1/c1".into(),
            read_only_rootfs: true,
            mounts: vec![BindMount {
                destination: "/data".into(),
                source: "/v/data".into(),
                read_only: true,
            }],
            limits: Limits {
                memory_bytes: Some(1 << 20),
                ..Default::default()
            },
            ..Default::default()
        });
        assert_eq!(s["process"]["user"]["uid"], 1000);
        assert_eq!(s["process"]["env"][0], "A=1");
        assert_eq!(s["process"]["cwd"], "/");
        assert_eq!(s["root"]["readonly"], true);
        assert_eq!(s["hostname"], "pod1");
        let ns = s["linux"]["namespaces"].as_array().unwrap();
        assert!(ns.contains(&json!({"type": "network", "path": "/run/netns/x"})));
        assert!(ns.contains(&json!({"type": "uts", "path": "/run/netns/x.uts"})));
        assert_eq!(s["linux"]["resources"]["memory"]["limit"], 1 << 20);
        assert_eq!(s["linux"]["cgroupsPath"], "/lab/pod1/c1");
        let last = s["mounts"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["destination"], "/data");
        assert!(last["options"].as_array().unwrap().contains(&json!("ro")));
        let host = build(&SpecInput {
            host_network: true,
            ..Default::default()
        });
        assert!(!host["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "network"));
    }
}
