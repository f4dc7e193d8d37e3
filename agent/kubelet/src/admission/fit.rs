//! Whether a pod's requests fit what the node has left: kubelet's
//! predicate admission reuses the scheduler's `noderesources.Fits`, so the
//! checks, their order (pods, cpu, memory, ephemeral-storage) and the
//! numbers in the message are the scheduler's. Pure.

use crate::admission::request::Request;

/// What the node offers pods (the Node's allocatable) and how many pods.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Allocatable {
    pub cpu_millis: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    pub pods: i64,
}

/// One resource the pod does not fit in (kubelet's
/// `InsufficientResourceError`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Insufficient {
    pub resource: &'static str,
    pub requested: i64,
    pub used: i64,
    pub capacity: i64,
}

impl Insufficient {
    /// `OutOfcpu`, `OutOfmemory`, `OutOfpods`, `OutOfephemeral-storage`.
    pub fn reason(&self) -> String {
        format!("OutOf{}", self.resource)
    }
    pub fn message(&self) -> String {
        format!(
            "Node didn't have enough resource: {}, requested: {}, used: {}, capacity: {}",
            self.resource, self.requested, self.used, self.capacity
        )
    }
}

/// Every resource the pod does not fit in, in the scheduler's order.
/// `used` is the sum of the admitted pods' requests, `pods` their number.
pub fn check(pod: Request, used: Request, pods: i64, node: Allocatable) -> Vec<Insufficient> {
    let mut out = Vec::new();
    if pods + 1 > node.pods {
        out.push(Insufficient {
            resource: "pods",
            requested: 1,
            used: pods,
            capacity: node.pods,
        });
    }
    let rows = [
        ("cpu", pod.cpu_millis, used.cpu_millis, node.cpu_millis),
        ("memory", pod.memory, used.memory, node.memory),
        (
            "ephemeral-storage",
            pod.ephemeral_storage,
            used.ephemeral_storage,
            node.ephemeral_storage,
        ),
    ];
    for (resource, requested, used, capacity) in rows {
        // A resource the pod does not request never stops it.
        if requested > 0 && requested > capacity - used {
            out.push(Insufficient {
                resource,
                requested,
                used,
                capacity,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: Allocatable = Allocatable {
        cpu_millis: 2000,
        memory: 1 << 30,
        ephemeral_storage: 10 << 30,
        pods: 3,
    };

    fn req(cpu: i64, mem: i64) -> Request {
        Request {
            cpu_millis: cpu,
            memory: mem,
            ephemeral_storage: 0,
        }
    }

    #[test]
    fn kubelet_message_and_reason() {
        let r = check(req(3000, 0), req(500, 0), 1, NODE);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].reason(), "OutOfcpu");
        assert_eq!(
            r[0].message(),
            "Node didn't have enough resource: cpu, requested: 3000, used: 500, capacity: 2000"
        );
    }

    #[test]
    fn exact_fit_is_admitted_and_zero_requests_always_fit() {
        assert!(check(req(1500, 1 << 29), req(500, 1 << 29), 2, NODE).is_empty());
        assert!(check(req(0, 0), req(5000, 5 << 30), 0, NODE).is_empty());
        let mem = check(req(0, 1), req(0, 1 << 30), 0, NODE);
        assert_eq!(mem[0].reason(), "OutOfmemory");
    }

    #[test]
    fn pods_first_then_cpu_memory_storage() {
        let big = Request {
            cpu_millis: 9000,
            memory: 2 << 30,
            ephemeral_storage: 11 << 30,
        };
        let r = check(big, Request::default(), 3, NODE);
        let reasons: Vec<_> = r.iter().map(|i| i.reason()).collect();
        assert_eq!(
            reasons,
            [
                "OutOfpods",
                "OutOfcpu",
                "OutOfmemory",
                "OutOfephemeral-storage"
            ]
        );
        assert_eq!(
            r[0].message(),
            "Node didn't have enough resource: pods, requested: 1, used: 3, capacity: 3"
        );
    }
}
