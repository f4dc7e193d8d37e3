//! The Node's conditions as kubelet reports them (MemoryPressure,
//! DiskPressure, PIDPressure, Ready, and NetworkUnavailable while the
//! overlay has no subnet), with each condition's lastTransitionTime kept
//! across heartbeats and moved only when its status changes. Pure but for
//! the time passed in.

use std::collections::HashMap;

use serde_json::{json, Value};

/// Resource pressure the eviction manager observed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pressure {
    pub memory: bool,
    pub disk: bool,
    pub pid: bool,
}

/// What the overlay says: `Some(subnet)` once it holds a lease.
pub type Overlay = Option<Option<ipnetwork::Ipv4Network>>;

/// Transition times by condition type.
#[derive(Debug, Default)]
pub struct Tracker {
    since: HashMap<&'static str, (&'static str, String)>,
}

struct Cond {
    kind: &'static str,
    status: &'static str,
    reason: &'static str,
    message: String,
}

fn pressure(
    kind: &'static str,
    on: bool,
    yes: (&'static str, &'static str),
    no: (&'static str, &'static str),
) -> Cond {
    let (reason, message) = if on { yes } else { no };
    Cond {
        kind,
        status: if on { "True" } else { "False" },
        reason,
        message: message.into(),
    }
}

impl Tracker {
    /// The full condition list for a status patch at time `now`;
    /// `runtime_error` (the runtime or its network is not ready, as the
    /// Ready message says it) makes the node not Ready.
    pub fn conditions(
        &mut self,
        p: Pressure,
        overlay: Overlay,
        runtime_error: Option<&str>,
        now: &str,
    ) -> Vec<Value> {
        let ready = match runtime_error {
            None => Cond {
                kind: "Ready",
                status: "True",
                reason: "KubeletReady",
                message: "capstan kubelet is posting ready status".into(),
            },
            Some(e) => Cond {
                kind: "Ready",
                status: "False",
                reason: "KubeletNotReady",
                message: e.to_string(),
            },
        };
        let mut conds = vec![
            pressure(
                "MemoryPressure",
                p.memory,
                (
                    "KubeletHasInsufficientMemory",
                    "kubelet has insufficient memory available",
                ),
                (
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
            ),
            pressure(
                "DiskPressure",
                p.disk,
                ("KubeletHasDiskPressure", "kubelet has disk pressure"),
                ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ),
            pressure(
                "PIDPressure",
                p.pid,
                (
                    "KubeletHasInsufficientPID",
                    "kubelet has insufficient PID available",
                ),
                (
                    "KubeletHasSufficientPID",
                    "kubelet has sufficient PID available",
                ),
            ),
            ready,
        ];
        if let Some(subnet) = overlay {
            conds.push(match subnet {
                Some(s) => Cond {
                    kind: "NetworkUnavailable",
                    status: "False",
                    reason: "CapstanOverlayIsUp",
                    message: format!("capstan overlay is up with subnet {s}"),
                },
                None => Cond {
                    kind: "NetworkUnavailable",
                    status: "True",
                    reason: "CapstanOverlayNotUp",
                    message: "capstan overlay has no subnet lease yet".into(),
                },
            });
        }
        conds
            .into_iter()
            .map(|c| {
                let entry = self
                    .since
                    .entry(c.kind)
                    .or_insert_with(|| (c.status, now.to_string()));
                if entry.0 != c.status {
                    *entry = (c.status, now.to_string());
                }
                json!({
                    "type": c.kind,
                    "status": c.status,
                    "reason": c.reason,
                    "message": c.message,
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": entry.1,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(c: &'a [Value], kind: &str) -> &'a Value {
        c.iter().find(|c| c["type"] == kind).unwrap()
    }

    #[test]
    fn transition_time_moves_only_on_change() {
        let mut t = Tracker::default();
        let c = t.conditions(Pressure::default(), None, None, "t0");
        let kinds: Vec<_> = c.iter().map(|c| c["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
        );
        assert_eq!(find(&c, "MemoryPressure")["status"], "False");
        assert_eq!(
            find(&c, "MemoryPressure")["reason"],
            "KubeletHasSufficientMemory"
        );
        let mem = Pressure {
            memory: true,
            ..Default::default()
        };
        let c = t.conditions(mem, None, None, "t1");
        let m = find(&c, "MemoryPressure");
        assert_eq!(m["status"], "True");
        assert_eq!(m["reason"], "KubeletHasInsufficientMemory");
        assert_eq!(m["lastTransitionTime"], "t1");
        assert_eq!(m["lastHeartbeatTime"], "t1");
        assert_eq!(find(&c, "Ready")["lastTransitionTime"], "t0");
        let c = t.conditions(mem, None, None, "t2");
        assert_eq!(find(&c, "MemoryPressure")["lastTransitionTime"], "t1");
        let c = t.conditions(Pressure::default(), None, None, "t3");
        assert_eq!(find(&c, "MemoryPressure")["lastTransitionTime"], "t3");
        assert_eq!(find(&c, "DiskPressure")["lastTransitionTime"], "t0");
    }

    #[test]
    fn network_unavailable_until_the_overlay_is_up() {
        let mut t = Tracker::default();
        let c = t.conditions(Pressure::default(), Some(None), None, "t0");
        let n = find(&c, "NetworkUnavailable");
        assert_eq!(n["status"], "True");
        assert_eq!(n["reason"], "CapstanOverlayNotUp");
        let c = t.conditions(
            Pressure::default(),
            Some(Some("10.244.3.0/24".parse().unwrap())),
            None,
            "t1",
        );
        let n = find(&c, "NetworkUnavailable");
        assert_eq!(n["status"], "False");
        assert_eq!(n["lastTransitionTime"], "t1");
        assert!(n["message"].as_str().unwrap().contains("10.244.3.0/24"));
    }

    #[test]
    fn ready_follows_the_container_runtime() {
        let mut t = Tracker::default();
        t.conditions(Pressure::default(), None, None, "t0");
        let c = t.conditions(
            Pressure::default(),
            None,
            Some("container runtime is down: connection refused"),
            "t1",
        );
        let r = find(&c, "Ready");
        assert_eq!(r["status"], "False");
        assert_eq!(r["reason"], "KubeletNotReady");
        assert_eq!(
            r["message"],
            "container runtime is down: connection refused"
        );
        assert_eq!(r["lastTransitionTime"], "t1");
        let c = t.conditions(Pressure::default(), None, None, "t2");
        assert_eq!(find(&c, "Ready")["status"], "True");
        assert_eq!(find(&c, "Ready")["lastTransitionTime"], "t2");
    }
}
