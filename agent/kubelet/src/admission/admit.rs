//! The admission decision itself: one pod against the handlers, in
//! kubelet's order, with the ledger of pods already admitted. Decides
//! only; never starts or stops a worker.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::watch;

use crate::admission::{fit, predicates, pressure, request};
use crate::node::conditions::Pressure;
use fit::Allocatable;
use predicates::{HostPort, NodeView};
use request::Request;

/// Why a pod was refused: the status reason (`OutOfcpu`, `Evicted`,
/// `NodeAffinity`, ...) and kubelet's message, which the Event carries
/// as is and the status after "Pod was rejected: ".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub reason: String,
    pub message: String,
}

pub const REJECTED_PREFIX: &str = "Pod was rejected: ";

impl Rejection {
    pub fn status_message(&self) -> String {
        format!("{REJECTED_PREFIX}{}", self.message)
    }
}

/// What admission reads while the kubelet runs.
#[derive(Clone)]
pub struct Inputs {
    pub allocatable: Allocatable,
    pub node: watch::Receiver<NodeView>,
    pub pressure: watch::Receiver<Pressure>,
}

/// The pods admitted and still holding their requests (kubelet's active
/// pods), by UID.
#[derive(Debug, Default)]
pub struct Ledger {
    pods: HashMap<String, (Request, Vec<HostPort>)>,
}

impl Ledger {
    pub fn add(&mut self, uid: &str, pod: &Pod) {
        self.pods.insert(
            uid.to_string(),
            (request::pod(pod), predicates::host_ports(pod)),
        );
    }
    pub fn remove(&mut self, uid: &str) {
        self.pods.remove(uid);
    }
    pub fn contains(&self, uid: &str) -> bool {
        self.pods.contains_key(uid)
    }
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.pods.retain(|uid, _| keep(uid));
    }
    fn used(&self) -> Request {
        self.pods
            .values()
            .map(|(r, _)| *r)
            .fold(Request::default(), Request::plus)
    }
    fn ports(&self) -> Vec<HostPort> {
        self.pods.values().flat_map(|(_, p)| p.clone()).collect()
    }
}

/// Judges `pod` against the node and the pods admitted before it.
pub fn admit(
    pod: &Pod,
    node: &NodeView,
    allocatable: Allocatable,
    pressure: Pressure,
    ledger: &Ledger,
) -> Result<(), Rejection> {
    if let Some(message) = pressure::check(pod, pressure) {
        return Err(Rejection {
            reason: "Evicted".into(),
            message,
        });
    }
    let short = fit::check(
        request::pod(pod),
        ledger.used(),
        ledger.pods.len() as i64,
        allocatable,
    );
    if let Some(i) = short.first() {
        return Err(Rejection {
            reason: i.reason(),
            message: i.message(),
        });
    }
    let is_static = !crate::status::api::from_api(pod);
    if let Some(f) = predicates::check(pod, node, &ledger.ports(), is_static).first() {
        return Err(Rejection {
            reason: f.name.to_string(),
            message: f.message(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name, "uid": name}, "spec": spec}))
            .unwrap()
    }

    fn cpu(name: &str, cpu: &str) -> Pod {
        pod(
            name,
            json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}),
        )
    }

    const NODE: Allocatable = Allocatable {
        cpu_millis: 2000,
        memory: 1 << 30,
        ephemeral_storage: 1 << 30,
        pods: 110,
    };

    #[test]
    fn admitted_pods_use_up_allocatable() {
        let node = NodeView::default();
        let mut ledger = Ledger::default();
        let first = cpu("first", "500m");
        assert_eq!(
            admit(&first, &node, NODE, Pressure::default(), &ledger),
            Ok(())
        );
        ledger.add("first", &first);
        let big = cpu("big", "3");
        let r = admit(&big, &node, NODE, Pressure::default(), &ledger).unwrap_err();
        assert_eq!(r.reason, "OutOfcpu");
        assert_eq!(
            r.status_message(),
            "Pod was rejected: Node didn't have enough resource: cpu, requested: 3000, used: 500, capacity: 2000"
        );
        let fits = cpu("fits", "1500m");
        assert_eq!(
            admit(&fits, &node, NODE, Pressure::default(), &ledger),
            Ok(())
        );
        // A pod that is gone gives its share back.
        ledger.add("fits", &fits);
        assert!(admit(&cpu("more", "1"), &node, NODE, Pressure::default(), &ledger).is_err());
        ledger.remove("fits");
        assert!(admit(&cpu("more", "1"), &node, NODE, Pressure::default(), &ledger).is_ok());
    }

    #[test]
    fn pressure_is_judged_before_resources_and_predicates_after() {
        let node = NodeView::default();
        let ledger = Ledger::default();
        let be = pod(
            "be",
            json!({"containers": [{"name": "c"}], "nodeSelector": {"a": "b"}}),
        );
        let memory = Pressure {
            memory: true,
            ..Default::default()
        };
        let r = admit(&be, &node, NODE, memory, &ledger).unwrap_err();
        assert_eq!(r.reason, "Evicted");
        assert_eq!(
            r.status_message(),
            "Pod was rejected: The node had condition: [MemoryPressure]. "
        );
        let r = admit(&be, &node, NODE, Pressure::default(), &ledger).unwrap_err();
        assert_eq!(r.reason, "NodeAffinity");
        // Resources are reported before predicates.
        let both = pod(
            "both",
            json!({"containers": [{"name": "c", "resources": {"requests": {"memory": "2Gi"}}}],
                   "nodeSelector": {"a": "b"}}),
        );
        assert_eq!(
            admit(&both, &node, NODE, memory, &ledger)
                .unwrap_err()
                .reason,
            "OutOfmemory"
        );
    }
}
