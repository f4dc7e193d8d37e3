//! kubelet's eviction admission handler: while the node reports a pressure
//! condition, new pods are refused with reason `Evicted` ("The node had
//! condition: [MemoryPressure]. "), except critical pods, and under memory
//! pressure alone pods that are not BestEffort or that tolerate the
//! memory-pressure taint. Pure.

use k8s_openapi::api::core::v1::{Pod, Taint};

use crate::admission::predicates::tolerations_tolerate;
use crate::admission::request::{qos, Qos};
use crate::eviction::rank::is_critical;
use crate::node::conditions::Pressure;
use crate::node::taints::MEMORY_PRESSURE;

/// The condition types that hold, in the order kubelet lists them.
fn conditions(p: Pressure) -> Vec<&'static str> {
    [
        (p.memory, "MemoryPressure"),
        (p.disk, "DiskPressure"),
        (p.pid, "PIDPressure"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect()
}

/// `None`: admitted; else the refusal message (reason `Evicted`).
pub fn check(pod: &Pod, p: Pressure) -> Option<String> {
    let conds = conditions(p);
    if conds.is_empty() || is_critical(pod) {
        return None;
    }
    if conds == ["MemoryPressure"] {
        if qos(pod) != Qos::BestEffort {
            return None;
        }
        let taint = Taint {
            key: MEMORY_PRESSURE.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        if tolerations_tolerate(pod, &taint) {
            return None;
        }
    }
    // Go's %v of a slice: [A B].
    Some(format!("The node had condition: [{}]. ", conds.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    const MEMORY: Pressure = Pressure {
        memory: true,
        disk: false,
        pid: false,
    };

    #[test]
    fn memory_pressure_refuses_best_effort_only() {
        let be = pod(json!({"containers": [{"name": "c"}]}));
        assert_eq!(
            check(&be, MEMORY).as_deref(),
            Some("The node had condition: [MemoryPressure]. ")
        );
        assert_eq!(check(&be, Pressure::default()), None);
        let burstable = pod(json!({"containers": [{"name": "c",
            "resources": {"requests": {"memory": "10Mi"}}}]}));
        assert_eq!(check(&burstable, MEMORY), None);
        let tolerant = pod(json!({"containers": [{"name": "c"}], "tolerations": [
            {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"}]}));
        assert_eq!(check(&tolerant, MEMORY), None);
        // Tolerating another pressure does not help.
        let other = pod(json!({"containers": [{"name": "c"}], "tolerations": [
            {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists"}]}));
        assert!(check(&other, MEMORY).is_some());
    }

    #[test]
    fn disk_or_pid_pressure_refuses_every_non_critical_pod() {
        let burstable = pod(json!({"containers": [{"name": "c",
            "resources": {"requests": {"memory": "10Mi"}}}]}));
        let both = Pressure {
            memory: true,
            disk: true,
            pid: false,
        };
        assert_eq!(
            check(&burstable, both).as_deref(),
            Some("The node had condition: [MemoryPressure DiskPressure]. ")
        );
        let pid = Pressure {
            pid: true,
            ..Default::default()
        };
        assert!(check(&burstable, pid).is_some());
        let critical = pod(json!({"containers": [{"name": "c"}], "priority": 2_000_000_000}));
        assert_eq!(check(&critical, pid), None);
    }
}
