//! Which pod goes first, kubelet's order for the starved resource: under
//! memory pressure pods using more than they requested, then lower
//! `spec.priority`, then the largest use above request; under disk
//! pressure the same with ephemeral-storage (inodes: any use exceeds, as
//! nothing requests inodes); under PID pressure lower priority, then the
//! most processes. Critical pods (static pods, priority at or above
//! system-critical) are never candidates. Also the eviction message.
//! Pure: pods and their measured usage in, an order out.

use std::cmp::{Ordering, Reverse};
use std::sync::Arc;

use capstan_k8s::requests::{self, RequestOptions};
use k8s_openapi::api::core::v1::Pod;

use crate::eviction::decide::Met;
use crate::eviction::threshold::Resource;
use crate::node::resources::format_bytes;

/// `scheduling.SystemCriticalPriority`: system-cluster-critical and above.
pub const SYSTEM_CRITICAL_PRIORITY: i32 = 2_000_000_000;

#[derive(Clone, Debug)]
pub struct Candidate {
    pub pod: Arc<Pod>,
    /// Use of the starved resource in its units: memory working set,
    /// ephemeral storage bytes, inodes, processes; 0 when not measured.
    pub usage: i64,
}

/// A pod's request of `resource` as kubelet's ranking reads it: requests
/// only (no limit defaulting, no overhead), app sum or largest init.
fn request_of(pod: &Pod, resource: &str) -> i64 {
    let r = requests::pod_request(pod, resource, RequestOptions::REQUESTS_ONLY);
    i64::try_from(r).unwrap_or(i64::MAX)
}

/// The pod's ephemeral-storage request, summed like memory's.
pub fn storage_request(pod: &Pod) -> i64 {
    request_of(pod, "ephemeral-storage")
}

/// The pod's memory request: its containers' sum, or the largest init
/// container's if that is more (init containers run one at a time).
pub fn memory_request(pod: &Pod) -> i64 {
    request_of(pod, "memory")
}

pub fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// kubelet's `IsCriticalPod`: static pods and system-critical priorities.
pub fn is_critical(pod: &Pod) -> bool {
    !crate::status::api::from_api(pod) || priority(pod) >= SYSTEM_CRITICAL_PRIORITY
}

/// Candidates in eviction order under memory pressure (first = evicted
/// first).
pub fn rank_memory(pods: Vec<Candidate>) -> Vec<Candidate> {
    rank(Resource::Memory, pods)
}

/// Candidates in eviction order for the starved `resource`.
pub fn rank(resource: Resource, mut pods: Vec<Candidate>) -> Vec<Candidate> {
    pods.retain(|c| !is_critical(&c.pod));
    match resource {
        Resource::Memory => pods.sort_by(|a, b| by_request(a, b, memory_request)),
        Resource::EphemeralStorage => pods.sort_by(|a, b| by_request(a, b, storage_request)),
        Resource::Inodes => pods.sort_by(|a, b| by_request(a, b, |_| 0)),
        Resource::Pids => pods.sort_by(|a, b| {
            priority(&a.pod)
                .cmp(&priority(&b.pod))
                .then(Reverse(a.usage).cmp(&Reverse(b.usage)))
        }),
    }
    pods
}

/// Use above request first, then lower priority, then the larger excess.
fn by_request(a: &Candidate, b: &Candidate, request: fn(&Pod) -> i64) -> Ordering {
    let over = |c: &Candidate| c.usage - request(&c.pod);
    let exceeds = |c: &Candidate| over(c) > 0;
    Reverse(exceeds(a))
        .cmp(&Reverse(exceeds(b)))
        .then(priority(&a.pod).cmp(&priority(&b.pod)))
        .then(Reverse(over(a)).cmp(&Reverse(over(b))))
}

/// kubelet's eviction message, e.g. "The node was low on resource: memory.
/// Threshold quantity: 100Mi, available: 10Mi. Container hog was using
/// 200Mi, request is 0, has larger consumption of memory. "
pub fn message(met: &Met, containers: &[(String, i64, i64)]) -> String {
    let resource = met.threshold.signal.resource().name();
    // Counts (inodes, pids) print as plain numbers, as Go's DecimalSI.
    let show = |v: i64| {
        if met.threshold.signal.bytes() {
            format_bytes(v)
        } else {
            v.to_string()
        }
    };
    let mut m = format!(
        "The node was low on resource: {resource}. Threshold quantity: {}, available: {}. ",
        show(met.amount),
        show(met.reading.available)
    );
    for (name, usage, request) in containers {
        if usage > request {
            m.push_str(&format!(
                "Container {name} was using {}, request is {}, has larger consumption of {resource}. ",
                format_bytes(*usage),
                format_bytes(*request)
            ));
        }
    }
    m
}

/// Each container's (name, request of `resource`) of the pod, for the
/// message (inodes and PIDs are never requested: 0).
pub fn container_requests(pod: &Pod, resource: Resource) -> Vec<(String, i64)> {
    let name = match resource {
        Resource::Memory => "memory",
        Resource::EphemeralStorage => "ephemeral-storage",
        Resource::Inodes | Resource::Pids => "",
    };
    pod.spec
        .as_ref()
        .map(|s| {
            s.containers
                .iter()
                .map(|c| {
                    let r = requests::container_request(c, name, RequestOptions::REQUESTS_ONLY);
                    (c.name.clone(), i64::try_from(r).unwrap_or(i64::MAX))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eviction::observe::Reading;
    use crate::eviction::threshold::{Signal, Threshold, Value};
    use serde_json::json;

    fn pod(name: &str, priority: i32, request: Option<&str>) -> Arc<Pod> {
        let mut c = json!({"name": "c", "image": "x"});
        if let Some(r) = request {
            c["resources"] = json!({"requests": {"memory": r}});
        }
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "uid": name},
                "spec": {"priority": priority, "containers": [c]},
            }))
            .unwrap(),
        )
    }

    fn names(c: &[Candidate]) -> Vec<String> {
        c.iter()
            .map(|c| c.pod.metadata.name.clone().unwrap_or_default())
            .collect()
    }

    #[test]
    fn over_request_first_then_priority_then_excess() {
        let mi = 1 << 20;
        let ranked = rank_memory(vec![
            // Within its request: last, whatever its priority.
            Candidate {
                pod: pod("within", -10, Some("500Mi")),
                usage: 400 * mi,
            },
            Candidate {
                pod: pod("high", 1000, None),
                usage: 300 * mi,
            },
            Candidate {
                pod: pod("low-small", 0, None),
                usage: 10 * mi,
            },
            Candidate {
                pod: pod("low-big", 0, Some("10Mi")),
                usage: 200 * mi,
            },
        ]);
        assert_eq!(names(&ranked), ["low-big", "low-small", "high", "within"]);
    }

    fn storage_pod(name: &str, priority: i32, request: Option<&str>) -> Arc<Pod> {
        let mut c = json!({"name": "c", "image": "x"});
        if let Some(r) = request {
            c["resources"] = json!({"requests": {"ephemeral-storage": r}});
        }
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "uid": name},
                "spec": {"priority": priority, "containers": [c]},
            }))
            .unwrap(),
        )
    }

    #[test]
    fn disk_pressure_ranks_by_storage_above_request_then_priority() {
        let mi = 1 << 20;
        let ranked = rank(
            Resource::EphemeralStorage,
            vec![
                Candidate {
                    pod: storage_pod("within", -5, Some("1Gi")),
                    usage: 900 * mi,
                },
                Candidate {
                    pod: storage_pod("writer-high", 100, None),
                    usage: 800 * mi,
                },
                Candidate {
                    pod: storage_pod("quiet", 0, None),
                    usage: mi,
                },
                Candidate {
                    pod: storage_pod("writer", 0, Some("100Mi")),
                    usage: 500 * mi,
                },
            ],
        );
        assert_eq!(names(&ranked), ["writer", "quiet", "writer-high", "within"]);
        // Nothing requests inodes: priority, then the most inodes.
        let ranked = rank(
            Resource::Inodes,
            vec![
                Candidate {
                    pod: storage_pod("few", 0, None),
                    usage: 10,
                },
                Candidate {
                    pod: storage_pod("many", 0, None),
                    usage: 10_000,
                },
                Candidate {
                    pod: storage_pod("important", 10, None),
                    usage: 50_000,
                },
            ],
        );
        assert_eq!(names(&ranked), ["many", "few", "important"]);
    }

    #[test]
    fn pid_pressure_ranks_by_priority_then_processes() {
        let ranked = rank(
            Resource::Pids,
            vec![
                Candidate {
                    pod: pod("one", 0, Some("1Gi")),
                    usage: 1,
                },
                Candidate {
                    pod: pod("forker", 0, Some("1Gi")),
                    usage: 500,
                },
                Candidate {
                    pod: pod("important-forker", 1000, None),
                    usage: 5000,
                },
            ],
        );
        assert_eq!(names(&ranked), ["forker", "one", "important-forker"]);
        let met = Met {
            threshold: Threshold {
                signal: Signal::PidAvailable,
                value: Value::Quantity(1000),
            },
            reading: Reading {
                available: 900,
                capacity: 4_194_304,
            },
            amount: 1000,
        };
        assert_eq!(
            message(&met, &[]),
            "The node was low on resource: pids. Threshold quantity: 1000, available: 900. "
        );
    }

    #[test]
    fn critical_pods_are_never_candidates() {
        let mut static_pod = (*pod("static", 0, None)).clone();
        static_pod.metadata.annotations = Some(
            [(
                "kubernetes.io/config.source".to_string(),
                "file".to_string(),
            )]
            .into(),
        );
        let ranked = rank_memory(vec![
            Candidate {
                pod: Arc::new(static_pod),
                usage: 1 << 30,
            },
            Candidate {
                pod: pod("system", SYSTEM_CRITICAL_PRIORITY, None),
                usage: 1 << 30,
            },
            Candidate {
                pod: pod("user", 0, None),
                usage: 1,
            },
        ]);
        assert_eq!(names(&ranked), ["user"]);
    }

    #[test]
    fn request_counts_init_containers_and_message_names_the_hog() {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {
                "initContainers": [{"name": "i", "resources": {"requests": {"memory": "1Gi"}}}],
                "containers": [
                    {"name": "a", "resources": {"requests": {"memory": "100Mi"}}},
                    {"name": "b", "resources": {"requests": {"memory": "200Mi"}}},
                ],
            },
        }))
        .unwrap();
        assert_eq!(memory_request(&p), 1 << 30);
        assert_eq!(
            container_requests(&p, Resource::Memory),
            vec![("a".into(), 100 << 20), ("b".into(), 200 << 20)]
        );
        let met = Met {
            threshold: Threshold {
                signal: Signal::AllocatableMemoryAvailable,
                value: Value::Quantity(100 << 20),
            },
            reading: Reading {
                available: 10 << 20,
                capacity: 300 << 20,
            },
            amount: 100 << 20,
        };
        assert_eq!(
            message(&met, &[("hog".into(), 200 << 20, 0), ("quiet".into(), 1, 1 << 20)]),
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: 10Mi. Container hog was using 200Mi, request is 0, has larger consumption of memory. "
        );
    }
}
