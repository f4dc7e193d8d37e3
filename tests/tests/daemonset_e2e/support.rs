//! Small readers of pod JSON and the workloads the tests run (the seed
//! demo, a TCP echo pair across nodes). No waiting, no assertions.

use serde_json::Value;

use crate::suite::IMAGE;

pub const DEMO_PORT: u16 = 30080;

pub fn name(p: &Value) -> String {
    p["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

pub fn node_of(p: &Value) -> String {
    p["spec"]["nodeName"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

pub fn pod_ip(p: &Value) -> Option<std::net::Ipv4Addr> {
    p["status"]["podIP"].as_str()?.parse().ok()
}

/// Running with every container ready (the Ready condition True).
pub fn is_ready(p: &Value) -> bool {
    p["status"]["phase"] == "Running"
        && p["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Whether `ip` lies in the CIDR text `cidr` (IPv4).
pub fn in_cidr(ip: std::net::Ipv4Addr, cidr: &str) -> bool {
    let Some((net, len)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(len)) = (net.parse::<std::net::Ipv4Addr>(), len.parse::<u32>()) else {
        return false;
    };
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) & mask
}

/// The seed example: a NodePort Service in front of a ReplicationController
/// serving HTTP (GET / answers the pod's name).
pub fn demo_yaml() -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: demo, namespace: default}}
spec:
  type: NodePort
  selector: {{app: demo}}
  ports: [{{port: 80, targetPort: 8080, nodePort: {DEMO_PORT}}}]
---
apiVersion: v1
kind: ReplicationController
metadata: {{name: demo, namespace: default}}
spec:
  replicas: 2
  selector: {{app: demo}}
  template:
    metadata: {{labels: {{app: demo}}}}
    spec:
      containers:
      - name: web
        image: {IMAGE}
        command: ["/bin/capstan-testsrv", "serve", "--http", "0.0.0.0:8080"]
        readinessProbe:
          httpGet: {{path: /, port: 8080}}
          periodSeconds: 1
"#
    )
}

/// A pod on `node` serving HTTP on 8080 (GET / answers its name).
pub fn web_pod(name: &str, node: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: default, labels: {{app: {name}}}}}
spec:
  nodeName: {node}
  containers:
  - name: web
    image: {IMAGE}
    command: ["/bin/capstan-testsrv", "serve", "--http", "0.0.0.0:8080", "--tcp-echo", "0.0.0.0:7000"]
"#
    )
}

/// A pod on `node` that opens ONE TCP connection to `server`:7000 and
/// sends a numbered line every half second over it, printing the echoes;
/// if the connection ever ends it says so (and never reconnects).
pub fn echo_client_pod(name: &str, node: &str, server: std::net::Ipv4Addr) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: default}}
spec:
  nodeName: {node}
  restartPolicy: Never
  containers:
  - name: client
    image: {IMAGE}
    command:
    - sh
    - -c
    - |
      i=0
      (while true; do i=$((i+1)); echo "seq $i"; usleep 500000; done) | nc {server} 7000
      echo "connection ended"
      sleep 3600
"#
    )
}

/// The sequence numbers echoed back so far, in order.
pub fn echoed(log: &str) -> Vec<u64> {
    log.lines()
        .filter_map(|l| l.strip_prefix("seq ")?.trim().parse().ok())
        .collect()
}
