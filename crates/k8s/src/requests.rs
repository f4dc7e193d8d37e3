//! What a pod asks of a node, per resource, as the scheduler and kubelet
//! count it (component-helpers' `PodRequests`): the larger of the app
//! containers' sum and the largest init container (init containers run one
//! at a time), plus the pod's overhead. Pure.

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::quantity::parse_resource;

/// How requests are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestOptions {
    /// A limit without a request counts as the request: the API server's
    /// defaulting, for pods it did not default (static pods).
    pub limits_as_requests: bool,
    /// Add `spec.overhead`.
    pub overhead: bool,
}

impl RequestOptions {
    /// What the scheduler and kubelet admission count.
    pub const ADMISSION: RequestOptions = RequestOptions {
        limits_as_requests: true,
        overhead: true,
    };
    /// Only what the containers request, as kubelet's eviction ranking reads it.
    pub const REQUESTS_ONLY: RequestOptions = RequestOptions {
        limits_as_requests: false,
        overhead: false,
    };
}

/// One container's request of `resource` (millicores for cpu, base units
/// otherwise); 0 when it asks for none or the quantity does not parse.
pub fn container_request(c: &Container, resource: &str, opts: RequestOptions) -> i128 {
    let Some(res) = c.resources.as_ref() else {
        return 0;
    };
    res.requests
        .as_ref()
        .and_then(|r| r.get(resource))
        .or_else(|| {
            opts.limits_as_requests
                .then(|| res.limits.as_ref().and_then(|l| l.get(resource)))
                .flatten()
        })
        .and_then(|q| parse_resource(resource, q))
        .unwrap_or(0)
}

/// The pod's effective request of `resource`.
pub fn pod_request(pod: &Pod, resource: &str, opts: RequestOptions) -> i128 {
    let Some(spec) = pod.spec.as_ref() else {
        return 0;
    };
    let app: i128 = spec
        .containers
        .iter()
        .map(|c| container_request(c, resource, opts))
        .sum();
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| container_request(c, resource, opts))
        .max()
        .unwrap_or(0);
    let overhead = if opts.overhead {
        spec.overhead
            .as_ref()
            .and_then(|o| o.get(resource))
            .and_then(|q| parse_resource(resource, q))
            .unwrap_or(0)
    } else {
        0
    };
    app.max(init) + overhead
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).expect("pod")
    }

    #[test]
    fn sums_apps_takes_largest_init_adds_overhead_and_defaults_from_limits() {
        let p = pod(json!({
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
        let a = RequestOptions::ADMISSION;
        assert_eq!(pod_request(&p, "cpu", a), 2010);
        assert_eq!(pod_request(&p, "memory", a), 100 << 20);
        assert_eq!(pod_request(&p, "ephemeral-storage", a), 1 << 30);
        let r = RequestOptions::REQUESTS_ONLY;
        assert_eq!(pod_request(&p, "cpu", r), 2000);
        assert_eq!(pod_request(&p, "ephemeral-storage", r), 0);
    }

    #[test]
    fn a_pod_without_spec_or_resources_asks_nothing() {
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}})).expect("pod");
        assert_eq!(pod_request(&p, "cpu", RequestOptions::ADMISSION), 0);
        let p = pod(json!({"containers": [{"name": "a"}]}));
        assert_eq!(pod_request(&p, "memory", RequestOptions::ADMISSION), 0);
    }
}
