//! Which thresholds are met now, and which pressure conditions hold: a
//! condition stays True until none of its thresholds has been met for the
//! pressure transition period (kubelet's `--eviction-pressure-transition-
//! period`, which keeps a node from flapping). Pure; the clock is passed in.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::eviction::observe::Reading;
use crate::eviction::threshold::{Resource, Signal, Threshold};
use crate::node::conditions::Pressure;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Met {
    pub threshold: Threshold,
    pub reading: Reading,
    /// The threshold in the signal's units.
    pub amount: i64,
}

/// Thresholds whose signal is below them (a signal not observed meets
/// nothing).
pub fn met(thresholds: &[Threshold], signals: &BTreeMap<Signal, Reading>) -> Vec<Met> {
    thresholds
        .iter()
        .filter_map(|t| {
            let r = signals.get(&t.signal)?;
            let amount = t.amount(r.capacity);
            (r.available < amount).then_some(Met {
                threshold: *t,
                reading: *r,
                amount,
            })
        })
        .collect()
}

/// When each pressure condition's thresholds were last seen met.
#[derive(Debug, Default)]
pub struct PressureTracker {
    memory: Option<Instant>,
    disk: Option<Instant>,
    pid: Option<Instant>,
}

impl PressureTracker {
    pub fn observe(&mut self, met: &[Met], now: Instant, period: Duration) -> Pressure {
        for m in met {
            let slot = match m.threshold.signal.resource() {
                Resource::Memory => &mut self.memory,
                Resource::EphemeralStorage | Resource::Inodes => &mut self.disk,
                Resource::Pids => &mut self.pid,
            };
            *slot = Some(now);
        }
        let holds = |t: Option<Instant>| t.is_some_and(|t| now.duration_since(t) <= period);
        Pressure {
            memory: holds(self.memory),
            disk: holds(self.disk),
            pid: holds(self.pid),
        }
    }
}

/// The met threshold that starves memory most (lowest available), if any.
pub fn memory_met(met: &[Met]) -> Option<&Met> {
    met.iter()
        .filter(|m| m.threshold.signal.resource() == Resource::Memory)
        .min_by_key(|m| m.reading.available - m.amount)
}

/// The threshold to act on this round, kubelet's eviction priority:
/// memory first, then disk bytes, inodes, process IDs; within a resource
/// the one furthest below its threshold.
pub fn to_reclaim(met: &[Met]) -> Option<&Met> {
    let rank = |r: Resource| match r {
        Resource::Memory => 0,
        Resource::EphemeralStorage => 1,
        Resource::Inodes => 2,
        Resource::Pids => 3,
    };
    met.iter().min_by_key(|m| {
        (
            rank(m.threshold.signal.resource()),
            m.reading.available - m.amount,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eviction::threshold::{defaults, parse_list, with_allocatable};

    fn reading(available: i64, capacity: i64) -> Reading {
        Reading {
            available,
            capacity,
        }
    }

    #[test]
    fn thresholds_met_below_quantity_or_percentage() {
        let t = with_allocatable(&defaults());
        let mut s = BTreeMap::new();
        s.insert(Signal::MemoryAvailable, reading(200 << 20, 1 << 30));
        s.insert(
            Signal::AllocatableMemoryAvailable,
            reading(50 << 20, 200 << 20),
        );
        s.insert(Signal::NodeFsAvailable, reading(11, 100));
        s.insert(Signal::ImageFsAvailable, reading(14, 100));
        let m = met(&t, &s);
        let names: Vec<_> = m.iter().map(|m| m.threshold.signal).collect();
        assert_eq!(
            names,
            vec![Signal::ImageFsAvailable, Signal::AllocatableMemoryAvailable]
        );
        assert_eq!(m[0].amount, 15);
        assert_eq!(
            memory_met(&m).map(|m| m.threshold.signal),
            Some(Signal::AllocatableMemoryAvailable)
        );
        // Memory before disk, whatever the amounts.
        assert_eq!(
            to_reclaim(&m).map(|m| m.threshold.signal),
            Some(Signal::AllocatableMemoryAvailable)
        );
        assert_eq!(
            to_reclaim(&m[..1]).map(|m| m.threshold.signal),
            Some(Signal::ImageFsAvailable)
        );
        // Exactly at the threshold is not below it.
        s.insert(Signal::ImageFsAvailable, reading(15, 100));
        assert_eq!(met(&t, &s).len(), 1);
    }

    #[test]
    fn disk_is_reclaimed_before_inodes_and_pids() {
        let t = parse_list("nodefs.available<10%,nodefs.inodesFree<5%,pid.available<1000").unwrap();
        let mut s = BTreeMap::new();
        s.insert(Signal::PidAvailable, reading(10, 4_000_000));
        s.insert(Signal::NodeFsInodesFree, reading(1, 100));
        s.insert(Signal::NodeFsAvailable, reading(9, 100));
        let m = met(&t, &s);
        assert_eq!(m.len(), 3);
        assert_eq!(
            to_reclaim(&m).map(|m| m.threshold.signal),
            Some(Signal::NodeFsAvailable)
        );
        assert_eq!(
            to_reclaim(&m[1..]).map(|m| m.threshold.signal),
            Some(Signal::NodeFsInodesFree)
        );
        assert_eq!(
            to_reclaim(&m[2..]).map(|m| m.threshold.signal),
            Some(Signal::PidAvailable)
        );
        assert!(to_reclaim(&[]).is_none());
    }

    #[test]
    fn pressure_holds_for_the_transition_period() {
        let t = with_allocatable(&defaults());
        let period = Duration::from_secs(5);
        let t0 = Instant::now();
        let mut p = PressureTracker::default();
        let mut low = BTreeMap::new();
        low.insert(Signal::MemoryAvailable, reading(1, 1 << 30));
        low.insert(Signal::NodeFsInodesFree, reading(1, 100));
        let ok: BTreeMap<Signal, Reading> = BTreeMap::new();
        assert_eq!(p.observe(&met(&t, &ok), t0, period), Pressure::default());
        let under = p.observe(&met(&t, &low), t0, period);
        assert!(under.memory && under.disk && !under.pid);
        let later = p.observe(&met(&t, &ok), t0 + Duration::from_secs(4), period);
        assert!(later.memory && later.disk, "still within the period");
        let after = p.observe(&met(&t, &ok), t0 + Duration::from_secs(6), period);
        assert_eq!(after, Pressure::default());
        // A zero period follows the signal at once.
        let mut z = PressureTracker::default();
        assert!(z.observe(&met(&t, &low), t0, Duration::ZERO).memory);
        assert!(
            !z.observe(&met(&t, &ok), t0 + Duration::from_millis(1), Duration::ZERO)
                .memory
        );
    }
}
