//! The pod manifests features start from: a static web pod, a memory hog,
//! and an API pod with a chosen priority, script and requests.

use crate::suite::*;

pub fn web_manifest(name: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
  - name: web
    image: {IMAGE}
    command: ["/bin/capstan-testsrv", "serve", "--http", "0.0.0.0:8080"]
    ports: [{{name: http, containerPort: 8080}}]
    readinessProbe:
      httpGet: {{path: /healthz, port: http}}
      periodSeconds: 1
"#
    )
}

/// A pod bound to node-1 whose container holds `mib` MiB of anonymous
/// memory: busybox dd's block buffer, kept while the write to a pipe
/// nobody reads blocks. `spec.priority` is set directly (capstan-control
/// has no PriorityClass admission; kubelet reads the field either way).
pub fn hog_manifest(name: &str, priority: i32, mib: u32) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: default
spec:
  nodeName: {NODE}
  priority: {priority}
  terminationGracePeriodSeconds: 1
  containers:
  - name: hog
    image: {IMAGE}
    command: ["sh", "-c", "dd if=/dev/zero bs={mib}M count=1 | sleep 3600"]
"#
    )
}

/// A pod bound to node-1 running `script`, with `extra` YAML lines
/// appended to its container (resources) and to its spec (selectors,
/// tolerations, volumes).
pub fn pod_manifest(
    name: &str,
    priority: i32,
    script: &str,
    container: &str,
    spec: &str,
) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: default
spec:
  nodeName: {NODE}
  priority: {priority}
  terminationGracePeriodSeconds: 1
{spec}
  containers:
  - name: main
    image: {IMAGE}
    command: ["sh", "-c", {script:?}]
{container}
"#
    )
}

pub fn cpu_request(millis: i64) -> String {
    format!("    resources:\n      requests:\n        cpu: {millis}m")
}
