//! Host ports a pod claims and when two claims conflict, as the scheduler's
//! NodePorts filter (and kubelet admission, which runs the same filter)
//! decides: only app containers' ports with a hostPort count; an empty
//! host IP means 0.0.0.0, an empty protocol TCP; two claims on the same
//! protocol and port conflict when either is 0.0.0.0 or both name the same
//! address. Pure.

use k8s_openapi::api::core::v1::Pod;

pub const WILDCARD: &str = "0.0.0.0";

/// One claimed host port, sanitized (HostPortInfo's defaults applied).
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i32,
}

impl HostPort {
    pub fn new(ip: Option<&str>, protocol: Option<&str>, port: i32) -> Self {
        HostPort {
            ip: ip.filter(|i| !i.is_empty()).unwrap_or(WILDCARD).to_string(),
            protocol: protocol
                .filter(|p| !p.is_empty())
                .unwrap_or("TCP")
                .to_string(),
            port,
        }
    }

    pub fn conflicts_with(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == WILDCARD || other.ip == WILDCARD)
    }
}

/// Every hostPort the pod's app containers claim.
pub fn of_pod(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    spec.containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p.host_port.filter(|h| *h > 0)?;
            Some(HostPort::new(
                p.host_ip.as_deref(),
                p.protocol.as_deref(),
                port,
            ))
        })
        .collect()
}

/// Does any of `wanted` conflict with any of `used`?
pub fn any_conflict<'a>(
    wanted: &[HostPort],
    used: impl IntoIterator<Item = &'a HostPort> + Clone,
) -> bool {
    wanted
        .iter()
        .any(|w| used.clone().into_iter().any(|u| w.conflicts_with(u)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(ports: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "ports": ports}],
                     "initContainers": [{"name": "i", "ports": [{"containerPort": 1, "hostPort": 9999}]}]}}))
        .expect("pod")
    }

    /// Cases of the scheduler's TestNodePorts / HostPortInfo.CheckConflict.
    #[test]
    fn conflicts() {
        let hp = |ip: &str, proto: &str, port| HostPort::new(Some(ip), Some(proto), port);
        let used = [hp("127.0.0.1", "TCP", 8080), hp("0.0.0.0", "UDP", 53)];
        let table = [
            ("same ip, proto, port", hp("127.0.0.1", "TCP", 8080), true),
            ("other ip", hp("127.0.0.2", "TCP", 8080), false),
            ("wildcard wanted", hp("0.0.0.0", "TCP", 8080), true),
            ("wildcard used", hp("10.0.0.1", "UDP", 53), true),
            ("other protocol", hp("127.0.0.1", "UDP", 8080), false),
            ("other port", hp("127.0.0.1", "TCP", 8081), false),
            (
                "empty ip is the wildcard",
                HostPort::new(None, Some("TCP"), 8080),
                true,
            ),
        ];
        for (name, want, conflict) in table {
            assert_eq!(any_conflict(&[want], &used), conflict, "{name}");
        }
    }

    #[test]
    fn only_app_containers_with_a_host_port_count() {
        let p = pod(json!([
            {"containerPort": 80, "hostPort": 8080},
            {"containerPort": 81},
            {"containerPort": 82, "hostPort": 8082, "hostIP": "10.0.0.1", "protocol": "UDP"},
        ]));
        assert_eq!(
            of_pod(&p),
            vec![
                HostPort::new(None, None, 8080),
                HostPort::new(Some("10.0.0.1"), Some("UDP"), 8082)
            ]
        );
    }
}
