//! The NoSchedule taints that follow pressure conditions
//! (`node.kubernetes.io/memory-pressure`, `disk-pressure`, `pid-pressure`),
//! which Kubernetes' node lifecycle controller sets for TaintNodesByCondition.
//! capstan-control does not, so the agent keeps them on its own Node. Pure:
//! current taints and pressure in, the new list out; other taints are kept.

use k8s_openapi::api::core::v1::Taint;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::node::conditions::Pressure;

pub const MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
pub const DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
pub const PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";

/// The taint list the node should carry, or `None` when it already does.
pub fn plan(current: &[Taint], p: Pressure, now: Timestamp) -> Option<Vec<Taint>> {
    let wanted = [
        (MEMORY_PRESSURE, p.memory),
        (DISK_PRESSURE, p.disk),
        (PID_PRESSURE, p.pid),
    ];
    let ours = |t: &Taint| t.effect == "NoSchedule" && wanted.iter().any(|(k, _)| t.key == *k);
    let has = |key: &str| {
        current
            .iter()
            .any(|t| t.key == key && t.effect == "NoSchedule")
    };
    if wanted.iter().all(|(k, on)| has(k) == *on) {
        return None;
    }
    let mut out: Vec<Taint> = current.iter().filter(|t| !ours(t)).cloned().collect();
    for (key, on) in wanted {
        if !on {
            continue;
        }
        // A taint already there keeps its timeAdded.
        let t = current
            .iter()
            .find(|t| t.key == key && t.effect == "NoSchedule")
            .cloned()
            .unwrap_or(Taint {
                key: key.into(),
                effect: "NoSchedule".into(),
                time_added: Some(Time(now)),
                value: None,
            });
        out.push(t);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            effect: effect.into(),
            ..Default::default()
        }
    }

    #[test]
    fn adds_and_removes_only_pressure_taints() {
        let now = Timestamp::UNIX_EPOCH;
        let other = taint("node.kubernetes.io/unreachable", "NoExecute");
        let mem = Pressure {
            memory: true,
            ..Default::default()
        };
        let added = plan(std::slice::from_ref(&other), mem, now).unwrap();
        assert_eq!(added.len(), 2);
        assert_eq!(added[0], other);
        assert_eq!(added[1].key, MEMORY_PRESSURE);
        assert_eq!(added[1].effect, "NoSchedule");
        assert!(added[1].time_added.is_some());
        assert_eq!(plan(&added, mem, now), None, "already there");
        let removed = plan(&added, Pressure::default(), now).unwrap();
        assert_eq!(removed, vec![other.clone()]);
        assert_eq!(plan(&[other], Pressure::default(), now), None);
        let all = Pressure {
            memory: true,
            disk: true,
            pid: true,
        };
        let keys: Vec<_> = plan(&[], all, now)
            .unwrap()
            .into_iter()
            .map(|t| t.key)
            .collect();
        assert_eq!(keys, [MEMORY_PRESSURE, DISK_PRESSURE, PID_PRESSURE]);
    }
}
