//! The eviction manager's settings: reservations, hard thresholds, the
//! pressure transition period, and allocatable from capacity (kubelet's
//! formula), plus Go's duration syntax its flags take. Parsing and
//! arithmetic only.

use std::time::Duration;

use crate::eviction::threshold::{self, Threshold};
use crate::node::resources::{self, NodeResources, Resources};

/// kubelet's `--eviction-pressure-transition-period` default.
pub const DEFAULT_TRANSITION_PERIOD: Duration = Duration::from_secs(300);
#[derive(Clone, Debug)]
pub struct Settings {
    pub system_reserved: Resources,
    pub kube_reserved: Resources,
    pub hard: Vec<Threshold>,
    pub pressure_transition_period: Duration,
    /// Reading a handful of /proc and cgroup files is cheap; kubelet's 10 s
    /// housekeeping would let a memory hog grow for that long.
    pub monitoring_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            system_reserved: Resources::default(),
            kube_reserved: Resources::default(),
            hard: threshold::defaults(),
            pressure_transition_period: DEFAULT_TRANSITION_PERIOD,
            monitoring_interval: Duration::from_secs(1),
        }
    }
}

impl Settings {
    /// Capacity and allocatable = capacity − system-reserved −
    /// kube-reserved − hard eviction thresholds.
    pub fn node_resources(&self, capacity: Resources) -> NodeResources {
        let reservation = self
            .system_reserved
            .plus(&self.kube_reserved)
            .plus(&threshold::reservation(&self.hard, &capacity));
        NodeResources {
            capacity,
            allocatable: resources::allocatable(&capacity, &reservation),
        }
    }
}

/// Go's duration syntax (`5m0s`, `30s`, `1h30m`, `500ms`, `0`), as
/// kubelet's duration flags take it.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let bad = || format!("{text:?} is not a duration (like 30s, 5m0s, 1h)");
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = t;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(n);
        let num: f64 = num.parse().map_err(|_| bad())?;
        let u = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(u);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += num * scale;
        rest = tail;
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("5m0s"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn allocatable_follows_kubelet_formula() {
        let s = Settings {
            system_reserved: Resources::parse("cpu=100m,memory=1Gi").unwrap(),
            kube_reserved: Resources::parse("memory=256Mi").unwrap(),
            ..Default::default()
        };
        let r = s.node_resources(Resources {
            cpu_millis: Some(2000),
            memory: Some(8 << 30),
            ephemeral_storage: Some(100 << 30),
            pid: None,
        });
        assert_eq!(r.allocatable.cpu_millis, Some(1900));
        assert_eq!(
            r.allocatable.memory,
            Some((8 << 30) - (1 << 30) - (256 << 20) - (100 << 20))
        );
        assert_eq!(r.allocatable.ephemeral_storage, Some(90 << 30));
        assert_eq!(r.capacity.memory, Some(8 << 30));
    }
}
