//! Why the kubelet will not run a pod (again): evicted or refused at
//! admission, and reading that back from a pod's status after a restart.
//! Pure.

use k8s_openapi::api::core::v1::Pod;

use crate::admission::admit::{Rejection, REJECTED_PREFIX};

/// Why the kubelet will not run a pod (again).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Terminal {
    /// Node-pressure eviction, with its message.
    Evicted(String),
    /// Refused at admission; nothing was ever started.
    Rejected(Rejection),
}

/// A pod the kubelet evicted or refused stays so across agent restarts:
/// its status says so.
pub(super) fn terminal_from_status(pod: &Pod) -> Option<Terminal> {
    let s = pod.status.as_ref()?;
    if s.phase.as_deref() != Some("Failed") {
        return None;
    }
    let reason = s.reason.clone()?;
    let message = s.message.clone().unwrap_or_default();
    match message.strip_prefix(REJECTED_PREFIX) {
        Some(m) => Some(Terminal::Rejected(Rejection {
            reason,
            message: m.to_string(),
        })),
        None => (reason == "Evicted").then_some(Terminal::Evicted(message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(super) fn with_status(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "status": status})).unwrap()
    }

    #[test]
    pub(super) fn evicted_and_refused_pods_stay_so_across_restarts() {
        let refused = with_status(json!({"phase": "Failed", "reason": "OutOfcpu",
            "message": "Pod was rejected: Node didn't have enough resource: cpu, requested: 3000, used: 500, capacity: 2000"}));
        assert_eq!(
            terminal_from_status(&refused),
            Some(Terminal::Rejected(Rejection {
                reason: "OutOfcpu".into(),
                message: "Node didn't have enough resource: cpu, requested: 3000, used: 500, capacity: 2000".into(),
            }))
        );
        let evicted = with_status(json!({"phase": "Failed", "reason": "Evicted",
            "message": "The node was low on resource: memory. "}));
        assert_eq!(
            terminal_from_status(&evicted),
            Some(Terminal::Evicted(
                "The node was low on resource: memory. ".into()
            ))
        );
        // A pod whose containers failed is not the kubelet's decision.
        let failed = with_status(json!({"phase": "Failed"}));
        assert_eq!(terminal_from_status(&failed), None);
        let running = with_status(json!({"phase": "Running", "reason": "Evicted"}));
        assert_eq!(terminal_from_status(&running), None);
    }
}
