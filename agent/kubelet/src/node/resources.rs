//! The node's resources as the Node reports them: capacity read from the
//! machine, reservations (`--system-reserved`, `--kube-reserved`, the hard
//! eviction thresholds) and allocatable = capacity − reservations, kubelet's
//! formula. Parsing and arithmetic only; never writes the API.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use capstan_k8s::quantity;

/// Pods per node, kubelet's default `--max-pods`.
pub const MAX_PODS: i64 = 110;

/// Amounts of the resources a node reports or reserves, in base units
/// (millicores, bytes, process IDs). `None`: not known / not reserved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu_millis: Option<i64>,
    pub memory: Option<i64>,
    pub ephemeral_storage: Option<i64>,
    pub pid: Option<i64>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ResourcesError {
    #[error("{item:?} is not name=quantity (like cpu=100m,memory=256Mi)")]
    Syntax { item: String },
    #[error("unknown resource {name:?} (cpu, memory, ephemeral-storage, pid)")]
    Unknown { name: String },
    #[error("{name}={value:?} is not a non-negative quantity (like 100m, 256Mi, 1Gi)")]
    Quantity { name: String, value: String },
}

impl Resources {
    /// `cpu=100m,memory=256Mi,ephemeral-storage=1Gi,pid=1000`, kubelet's
    /// `--system-reserved` syntax.
    pub fn parse(text: &str) -> Result<Self, ResourcesError> {
        let mut pairs = BTreeMap::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (k, v) = item.split_once('=').ok_or_else(|| ResourcesError::Syntax {
                item: item.to_string(),
            })?;
            pairs.insert(k.trim().to_string(), v.trim().to_string());
        }
        Self::from_map(&pairs)
    }

    /// The config file's table form (`system-reserved = {memory = "1Gi"}`).
    pub fn from_map(pairs: &BTreeMap<String, String>) -> Result<Self, ResourcesError> {
        let mut r = Resources::default();
        for (name, value) in pairs {
            let bad = || ResourcesError::Quantity {
                name: name.clone(),
                value: value.clone(),
            };
            let milli = name == "cpu";
            let q = quantity::parse(value, milli)
                .filter(|q| *q >= 0)
                .and_then(|q| i64::try_from(q).ok())
                .ok_or_else(bad)?;
            match name.as_str() {
                "cpu" => r.cpu_millis = Some(q),
                "memory" => r.memory = Some(q),
                "ephemeral-storage" => r.ephemeral_storage = Some(q),
                "pid" => r.pid = Some(q),
                _ => return Err(ResourcesError::Unknown { name: name.clone() }),
            }
        }
        Ok(r)
    }

    /// Sum of reservations (a resource reserved nowhere stays `None`).
    pub fn plus(&self, o: &Resources) -> Resources {
        let add = |a: Option<i64>, b: Option<i64>| match (a, b) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
        };
        Resources {
            cpu_millis: add(self.cpu_millis, o.cpu_millis),
            memory: add(self.memory, o.memory),
            ephemeral_storage: add(self.ephemeral_storage, o.ephemeral_storage),
            pid: add(self.pid, o.pid),
        }
    }
}

/// What the Node reports: capacity and allocatable side by side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeResources {
    pub capacity: Resources,
    pub allocatable: Resources,
}

/// allocatable = capacity − reservation, never below zero (kubelet's
/// `GetNodeAllocatableReservation` and its clamp).
pub fn allocatable(capacity: &Resources, reservation: &Resources) -> Resources {
    let sub = |c: Option<i64>, r: Option<i64>| c.map(|c| (c - r.unwrap_or(0)).max(0));
    Resources {
        cpu_millis: sub(capacity.cpu_millis, reservation.cpu_millis),
        memory: sub(capacity.memory, reservation.memory),
        ephemeral_storage: sub(capacity.ephemeral_storage, reservation.ephemeral_storage),
        pid: sub(capacity.pid, reservation.pid),
    }
}

/// Bytes as a canonical binary quantity: the largest of Ki/Mi/Gi/Ti that
/// divides exactly (`262144Ki` is printed `256Mi`), else plain bytes.
pub fn format_bytes(b: i64) -> String {
    for (suffix, shift) in [("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)] {
        let unit = 1i64 << shift;
        if b != 0 && b % unit == 0 {
            return format!("{}{suffix}", b / unit);
        }
    }
    b.to_string()
}

pub fn format_cpu(millis: i64) -> String {
    if millis % 1000 == 0 {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// The `capacity`/`allocatable` map of the Node status (pid is reserved
/// but, as with kubelet, never reported).
pub fn to_json(r: &Resources) -> Value {
    let mut m = serde_json::Map::new();
    if let Some(c) = r.cpu_millis {
        m.insert("cpu".into(), json!(format_cpu(c)));
    }
    if let Some(b) = r.memory {
        m.insert("memory".into(), json!(format_bytes(b)));
    }
    if let Some(b) = r.ephemeral_storage {
        m.insert("ephemeral-storage".into(), json!(format_bytes(b)));
    }
    m.insert("pods".into(), json!(MAX_PODS.to_string()));
    Value::Object(m)
}

/// `MemTotal` of /proc/meminfo in bytes.
pub fn parse_mem_total(meminfo: &str) -> Option<i64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<i64>().ok())
        .map(|kib| kib * 1024)
}

/// The machine's capacity: CPUs, memory, the filesystem holding `nodefs`
/// (the kubelet's root directory) and the process-ID limit.
pub fn machine_capacity(nodefs: &Path) -> Resources {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as i64)
        .unwrap_or(1);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| parse_mem_total(&t));
    let ephemeral_storage = nix::sys::statvfs::statvfs(nodefs)
        .ok()
        .map(|s| s.blocks() as i64 * s.fragment_size() as i64);
    Resources {
        cpu_millis: Some(cpus * 1000),
        memory,
        ephemeral_storage,
        pid: pid_limit(),
    }
}

/// The process-ID limit: the smaller of pid_max and threads-max, as
/// kubelet reads it.
pub fn pid_limit() -> Option<i64> {
    let read = |p: &str| -> Option<i64> { std::fs::read_to_string(p).ok()?.trim().parse().ok() };
    match (
        read("/proc/sys/kernel/pid_max"),
        read("/proc/sys/kernel/threads-max"),
    ) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubelet_reserved_syntax() {
        let r = Resources::parse("cpu=100m, memory=256Mi,ephemeral-storage=1Gi,pid=1000").unwrap();
        assert_eq!(r.cpu_millis, Some(100));
        assert_eq!(r.memory, Some(256 << 20));
        assert_eq!(r.ephemeral_storage, Some(1 << 30));
        assert_eq!(r.pid, Some(1000));
        assert_eq!(Resources::parse("").unwrap(), Resources::default());
        assert_eq!(Resources::parse("cpu=1").unwrap().cpu_millis, Some(1000));
        assert!(matches!(
            Resources::parse("gpu=1"),
            Err(ResourcesError::Unknown { .. })
        ));
        assert!(matches!(
            Resources::parse("memory"),
            Err(ResourcesError::Syntax { .. })
        ));
        let e = Resources::parse("memory=lots").unwrap_err();
        assert!(e.to_string().contains("memory=\"lots\""), "{e}");
        assert!(Resources::parse("memory=-1Mi").is_err());
    }

    #[test]
    fn allocatable_is_capacity_minus_reservations_clamped() {
        let cap = Resources {
            cpu_millis: Some(2000),
            memory: Some(4 << 30),
            ephemeral_storage: Some(100 << 30),
            pid: Some(4_194_304),
        };
        let system = Resources::parse("cpu=100m,memory=256Mi").unwrap();
        let kube = Resources::parse("cpu=200m,memory=128Mi").unwrap();
        let hard = Resources {
            memory: Some(100 << 20),
            ephemeral_storage: Some(10 << 30),
            ..Default::default()
        };
        let a = allocatable(&cap, &system.plus(&kube).plus(&hard));
        assert_eq!(a.cpu_millis, Some(1700));
        assert_eq!(a.memory, Some((4 << 30) - (484 << 20)));
        assert_eq!(a.ephemeral_storage, Some(90 << 30));
        let huge = Resources::parse("memory=1Ti").unwrap();
        assert_eq!(allocatable(&cap, &huge).memory, Some(0));
        // Unknown capacity stays unknown.
        assert_eq!(allocatable(&Resources::default(), &system).memory, None);
    }

    #[test]
    fn quantities_print_canonically() {
        assert_eq!(format_bytes(256 << 20), "256Mi");
        assert_eq!(format_bytes(24_683_520 * 1024), "24105Mi");
        assert_eq!(format_bytes(16_393_568 * 1024), "16393568Ki");
        assert_eq!(format_bytes(1000), "1000");
        assert_eq!(format_bytes(0), "0");
        assert_eq!(format_cpu(2000), "2");
        assert_eq!(format_cpu(1900), "1900m");
        let j = to_json(&Resources {
            cpu_millis: Some(1900),
            memory: Some(1 << 30),
            ephemeral_storage: None,
            pid: Some(5),
        });
        assert_eq!(j, json!({"cpu": "1900m", "memory": "1Gi", "pods": "110"}));
        assert_eq!(
            parse_mem_total("MemTotal:       24683520 kB\nMemFree: 1 kB\n"),
            Some(24_683_520 * 1024)
        );
    }
}
