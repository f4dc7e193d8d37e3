//! What a pod asks of the node, as the scheduler and kubelet's admission
//! count it: per resource the larger of the app containers' sum and the
//! largest init container (init containers run one at a time), plus the
//! pod's overhead; a limit without a request counts as the request (the
//! API's defaulting). Also the pod's QoS class. Pure.

use k8s_openapi::api::core::v1::{Container, Pod, ResourceRequirements};

use capstan_k8s::quantity;
use capstan_k8s::requests::{self, RequestOptions};

/// A pod's requests in base units (millicores, bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub cpu_millis: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
}

impl Request {
    pub fn plus(self, o: Request) -> Request {
        Request {
            cpu_millis: self.cpu_millis.saturating_add(o.cpu_millis),
            memory: self.memory.saturating_add(o.memory),
            ephemeral_storage: self.ephemeral_storage.saturating_add(o.ephemeral_storage),
        }
    }
}

/// A shared-rules amount in the kubelet's i64 units (saturating: no pod
/// asks for more than i64 holds).
fn amount(requested: i128) -> i64 {
    i64::try_from(requested).unwrap_or(i64::MAX)
}

pub fn container(c: &Container) -> Request {
    let of = |name| {
        amount(requests::container_request(
            c,
            name,
            RequestOptions::ADMISSION,
        ))
    };
    Request {
        cpu_millis: of("cpu"),
        memory: of("memory"),
        ephemeral_storage: of("ephemeral-storage"),
    }
}

/// The pod's effective request (kubelet's `PodRequests`).
pub fn pod(p: &Pod) -> Request {
    let of = |name| amount(requests::pod_request(p, name, RequestOptions::ADMISSION));
    Request {
        cpu_millis: of("cpu"),
        memory: of("memory"),
        ephemeral_storage: of("ephemeral-storage"),
    }
}

/// Kubernetes' QoS classes; kubelet's eviction admission treats BestEffort
/// pods apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Qos {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl Qos {
    pub fn name(self) -> &'static str {
        match self {
            Qos::Guaranteed => "Guaranteed",
            Qos::Burstable => "Burstable",
            Qos::BestEffort => "BestEffort",
        }
    }
}

/// `GetPodQOS`: BestEffort without any cpu/memory request or limit;
/// Guaranteed when every container limits cpu and memory and requests
/// (defaulted from limits) equal the limits; else Burstable.
pub fn qos(p: &Pod) -> Qos {
    let Some(spec) = p.spec.as_ref() else {
        return Qos::BestEffort;
    };
    let all: Vec<&Container> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .collect();
    let q = |r: Option<&ResourceRequirements>, limits: bool, name: &str| {
        r.and_then(|r| {
            if limits {
                r.limits.as_ref()
            } else {
                r.requests.as_ref()
            }
        })
        .and_then(|m| m.get(name))
        .and_then(|q| quantity::parse(&q.0, name == "cpu"))
        .filter(|v| *v > 0)
    };
    let any = all.iter().any(|c| {
        ["cpu", "memory"].iter().any(|n| {
            q(c.resources.as_ref(), false, n).is_some()
                || q(c.resources.as_ref(), true, n).is_some()
        })
    });
    if !any {
        return Qos::BestEffort;
    }
    let guaranteed = all.iter().all(|c| {
        ["cpu", "memory"].iter().all(|n| {
            let r = c.resources.as_ref();
            match q(r, true, n) {
                Some(limit) => q(r, false, n).is_none_or(|req| req == limit),
                None => false,
            }
        })
    });
    if guaranteed {
        Qos::Guaranteed
    } else {
        Qos::Burstable
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod_of(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    #[test]
    fn sums_apps_takes_largest_init_and_defaults_from_limits() {
        let p = pod_of(json!({
            "initContainers": [
                {"name": "i1", "resources": {"requests": {"cpu": "2", "memory": "10Mi"}}},
                {"name": "i2", "resources": {"requests": {"cpu": "500m"}}},
            ],
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "100Mi"}}},
                {"name": "b", "resources": {"limits": {"cpu": "250m", "ephemeral-storage": "1Gi"}}},
            ],
            "overhead": {"cpu": "10m"},
        }));
        assert_eq!(
            pod(&p),
            Request {
                cpu_millis: 2010,
                memory: 100 << 20,
                ephemeral_storage: 1 << 30
            }
        );
        assert_eq!(
            pod(&pod_of(json!({"containers": [{"name": "a"}]}))),
            Request::default()
        );
    }

    #[test]
    fn qos_classes() {
        let be = pod_of(json!({"containers": [{"name": "a"}]}));
        assert_eq!(qos(&be), Qos::BestEffort);
        let eph_only = pod_of(json!({"containers": [{"name": "a",
            "resources": {"requests": {"ephemeral-storage": "1Gi"}}}]}));
        assert_eq!(qos(&eph_only), Qos::BestEffort);
        let burst = pod_of(json!({"containers": [{"name": "a",
            "resources": {"requests": {"cpu": "1"}}}]}));
        assert_eq!(qos(&burst), Qos::Burstable);
        let guaranteed = pod_of(json!({"containers": [{"name": "a",
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}));
        assert_eq!(qos(&guaranteed), Qos::Guaranteed);
        let unequal = pod_of(json!({"containers": [{"name": "a",
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}}]}));
        assert_eq!(qos(&unequal), Qos::Burstable);
    }
}
