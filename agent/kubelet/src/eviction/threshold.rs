//! Eviction signals and hard thresholds in kubelet's syntax
//! (`memory.available<100Mi,nodefs.available<10%`), their defaults, and
//! what they reserve from allocatable. Parsing and arithmetic only.

use std::collections::BTreeMap;
use std::fmt;

use crate::node::resources::{format_bytes, Resources};
use capstan_k8s::quantity;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    MemoryAvailable,
    /// Allocatable memory minus the pods' working set; kubelet derives it
    /// from `memory.available`'s threshold (never set by users).
    AllocatableMemoryAvailable,
    NodeFsAvailable,
    NodeFsInodesFree,
    ImageFsAvailable,
    ImageFsInodesFree,
    PidAvailable,
}

/// The node resource a signal measures (`The node was low on resource: X`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    Memory,
    EphemeralStorage,
    Inodes,
    Pids,
}

impl Resource {
    pub fn name(self) -> &'static str {
        match self {
            Resource::Memory => "memory",
            Resource::EphemeralStorage => "ephemeral-storage",
            Resource::Inodes => "inodes",
            Resource::Pids => "pids",
        }
    }
}

impl Signal {
    const USER: [Signal; 6] = [
        Signal::MemoryAvailable,
        Signal::NodeFsAvailable,
        Signal::NodeFsInodesFree,
        Signal::ImageFsAvailable,
        Signal::ImageFsInodesFree,
        Signal::PidAvailable,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "memory.available",
            Signal::AllocatableMemoryAvailable => "allocatableMemory.available",
            Signal::NodeFsAvailable => "nodefs.available",
            Signal::NodeFsInodesFree => "nodefs.inodesFree",
            Signal::ImageFsAvailable => "imagefs.available",
            Signal::ImageFsInodesFree => "imagefs.inodesFree",
            Signal::PidAvailable => "pid.available",
        }
    }

    pub fn resource(self) -> Resource {
        match self {
            Signal::MemoryAvailable | Signal::AllocatableMemoryAvailable => Resource::Memory,
            Signal::NodeFsAvailable | Signal::ImageFsAvailable => Resource::EphemeralStorage,
            Signal::NodeFsInodesFree | Signal::ImageFsInodesFree => Resource::Inodes,
            Signal::PidAvailable => Resource::Pids,
        }
    }

    /// Signals of the image filesystem.
    pub fn image_fs(self) -> bool {
        matches!(self, Signal::ImageFsAvailable | Signal::ImageFsInodesFree)
    }

    /// Whether amounts of this signal are bytes (else counts).
    pub fn bytes(self) -> bool {
        matches!(
            self.resource(),
            Resource::Memory | Resource::EphemeralStorage
        )
    }

    fn from_name(s: &str) -> Option<Signal> {
        Self::USER.into_iter().find(|g| g.name() == s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    Quantity(i64),
    /// Percent of the signal's capacity, 0.0..=100.0.
    Percentage(f64),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Threshold {
    pub signal: Signal,
    pub value: Value,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ThresholdError {
    #[error("{item:?}: only \"<\" thresholds exist (like memory.available<100Mi)")]
    Operator { item: String },
    #[error("unknown eviction signal {signal:?} (memory.available, nodefs.available, nodefs.inodesFree, imagefs.available, imagefs.inodesFree, pid.available)")]
    Signal { signal: String },
    #[error("{signal}: {value:?} is not a quantity or a percentage (like 100Mi or 10%)")]
    Value { signal: String, value: String },
    #[error("{signal} is given twice")]
    Duplicate { signal: String },
}

impl Threshold {
    /// The threshold in the signal's units against a capacity (kubelet
    /// truncates percentages the same way).
    pub fn amount(&self, capacity: i64) -> i64 {
        match self.value {
            Value::Quantity(q) => q,
            Value::Percentage(p) => (capacity as f64 * p / 100.0) as i64,
        }
    }

    /// Human form for messages: `100Mi`, `10%`.
    pub fn display_value(&self) -> String {
        match self.value {
            Value::Quantity(q) if self.signal.bytes() => format_bytes(q),
            Value::Quantity(q) => q.to_string(),
            Value::Percentage(p) => format!("{p}%"),
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}<{}", self.signal.name(), self.display_value())
    }
}

fn parse_value(signal: &str, value: &str) -> Result<Value, ThresholdError> {
    let bad = || ThresholdError::Value {
        signal: signal.to_string(),
        value: value.to_string(),
    };
    let v = value.trim();
    if let Some(p) = v.strip_suffix('%') {
        let p: f64 = p.trim().parse().map_err(|_| bad())?;
        if !(0.0..=100.0).contains(&p) {
            return Err(bad());
        }
        return Ok(Value::Percentage(p));
    }
    quantity::parse(v, false)
        .filter(|q| *q >= 0)
        .and_then(|q| i64::try_from(q).ok())
        .map(Value::Quantity)
        .ok_or_else(bad)
}

fn push(out: &mut Vec<Threshold>, signal: &str, value: &str) -> Result<(), ThresholdError> {
    let s = Signal::from_name(signal.trim()).ok_or_else(|| ThresholdError::Signal {
        signal: signal.trim().to_string(),
    })?;
    if out.iter().any(|t| t.signal == s) {
        return Err(ThresholdError::Duplicate {
            signal: s.name().into(),
        });
    }
    out.push(Threshold {
        signal: s,
        value: parse_value(s.name(), value)?,
    });
    Ok(())
}

/// `--eviction-hard`: given thresholds replace the defaults entirely, as
/// kubelet does without `mergeDefaultEvictionSettings`.
pub fn parse_list(text: &str) -> Result<Vec<Threshold>, ThresholdError> {
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (signal, value) = item
            .split_once('<')
            .ok_or_else(|| ThresholdError::Operator {
                item: item.to_string(),
            })?;
        push(&mut out, signal, value)?;
    }
    Ok(out)
}

/// The config file's table form (`eviction-hard = {"memory.available" = "100Mi"}`).
pub fn from_map(map: &BTreeMap<String, String>) -> Result<Vec<Threshold>, ThresholdError> {
    let mut out = Vec::new();
    for (signal, value) in map {
        push(&mut out, signal, value)?;
    }
    Ok(out)
}

/// kubelet's defaults on Linux.
pub fn defaults() -> Vec<Threshold> {
    let q = |signal, v| Threshold {
        signal,
        value: Value::Quantity(v),
    };
    let p = |signal, v| Threshold {
        signal,
        value: Value::Percentage(v),
    };
    vec![
        q(Signal::MemoryAvailable, 100 << 20),
        p(Signal::NodeFsAvailable, 10.0),
        p(Signal::NodeFsInodesFree, 5.0),
        p(Signal::ImageFsAvailable, 15.0),
        p(Signal::ImageFsInodesFree, 5.0),
    ]
}

/// Thresholds the manager watches: the configured ones plus the
/// allocatable-memory signal with `memory.available`'s threshold, which
/// kubelet adds when node allocatable is enforced on pods.
pub fn with_allocatable(hard: &[Threshold]) -> Vec<Threshold> {
    let mut out = hard.to_vec();
    if let Some(m) = hard.iter().find(|t| t.signal == Signal::MemoryAvailable) {
        out.push(Threshold {
            signal: Signal::AllocatableMemoryAvailable,
            value: m.value,
        });
    }
    out
}

/// What hard thresholds take out of allocatable: memory.available's from
/// memory, nodefs.available's from ephemeral-storage (kubelet's
/// `hardEvictionReservation`).
pub fn reservation(hard: &[Threshold], capacity: &Resources) -> Resources {
    let mut r = Resources::default();
    for t in hard {
        match t.signal {
            Signal::MemoryAvailable => r.memory = Some(t.amount(capacity.memory.unwrap_or(0))),
            Signal::NodeFsAvailable => {
                r.ephemeral_storage = Some(t.amount(capacity.ephemeral_storage.unwrap_or(0)))
            }
            _ => {}
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubelet_syntax_with_percentages() {
        let t =
            parse_list("memory.available<100Mi, nodefs.available<10%,pid.available<1000").unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].signal, Signal::MemoryAvailable);
        assert_eq!(t[0].value, Value::Quantity(100 << 20));
        assert_eq!(t[1].value, Value::Percentage(10.0));
        assert_eq!(t[1].amount(1000), 100);
        assert_eq!(t[2].amount(0), 1000);
        assert_eq!(t[0].to_string(), "memory.available<100Mi");
        assert_eq!(t[1].to_string(), "nodefs.available<10%");
        assert_eq!(t[2].to_string(), "pid.available<1000");
        assert!(parse_list("").unwrap().is_empty());
    }

    #[test]
    fn rejects_what_kubelet_rejects() {
        assert!(matches!(
            parse_list("memory.available>1Gi"),
            Err(ThresholdError::Operator { .. })
        ));
        assert!(matches!(
            parse_list("memory.free<1Gi"),
            Err(ThresholdError::Signal { .. })
        ));
        assert!(matches!(
            parse_list("allocatableMemory.available<1Gi"),
            Err(ThresholdError::Signal { .. })
        ));
        assert!(matches!(
            parse_list("nodefs.available<120%"),
            Err(ThresholdError::Value { .. })
        ));
        assert!(matches!(
            parse_list("memory.available<lots"),
            Err(ThresholdError::Value { .. })
        ));
        assert!(matches!(
            parse_list("memory.available<1Gi,memory.available<2Gi"),
            Err(ThresholdError::Duplicate { .. })
        ));
        let e = parse_list("memory.available>1Gi").unwrap_err().to_string();
        assert!(e.contains("only \"<\""), "{e}");
    }

    #[test]
    fn table_form_and_defaults() {
        let m = BTreeMap::from([
            ("memory.available".to_string(), "200Mi".to_string()),
            ("imagefs.available".to_string(), "15%".to_string()),
        ]);
        let t = from_map(&m).unwrap();
        assert_eq!(t.len(), 2);
        let d = defaults();
        assert_eq!(d[0].to_string(), "memory.available<100Mi");
        assert_eq!(
            d.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(","),
            "memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<15%,imagefs.inodesFree<5%"
        );
        let all = with_allocatable(&d);
        assert_eq!(
            all.last().unwrap().signal,
            Signal::AllocatableMemoryAvailable
        );
        assert_eq!(all.last().unwrap().value, Value::Quantity(100 << 20));
        assert_eq!(with_allocatable(&[]).len(), 0);
    }

    #[test]
    fn hard_thresholds_reserve_memory_and_storage() {
        let cap = Resources {
            memory: Some(8 << 30),
            ephemeral_storage: Some(100 << 30),
            ..Default::default()
        };
        let r = reservation(&defaults(), &cap);
        assert_eq!(r.memory, Some(100 << 20));
        assert_eq!(r.ephemeral_storage, Some(10 << 30));
        assert_eq!(r.cpu_millis, None);
        let pct = parse_list("memory.available<10%").unwrap();
        assert_eq!(reservation(&pct, &cap).memory, Some((8 << 30) / 10));
    }
}
