//! The manifests the suite's tests create, in the suite's namespace.

/// The namespace the tests work in (made before the first test).
pub const NS: &str = "e2e";

pub fn configmap_yaml(name: &str, data: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {NS}\n  labels:\n    suite: e2e\ndata:\n  key: \"{data}\"\n"
    )
}

pub fn deployment_yaml(name: &str, replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {NS}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: main
        image: capstan.test/testsrv:latest
"#
    )
}

pub fn pod_yaml(name: &str, node: Option<&str>, labels: &str) -> String {
    let node = node
        .map(|n| format!("  nodeName: {n}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {NS}\n  labels:\n{labels}spec:\n{node}  containers:\n  - name: main\n    image: capstan.test/testsrv:latest\n"
    )
}

pub fn node_yaml(name: &str) -> String {
    format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  labels:\n    suite: e2e\n")
}

pub fn lease_yaml(name: &str) -> String {
    format!("apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: {name}\n  namespace: kube-node-lease\nspec:\n  holderIdentity: {name}\n  leaseDurationSeconds: 40\n")
}

pub fn secret_yaml(name: &str) -> String {
    format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {NS}\nstringData:\n  key: v\n")
}
