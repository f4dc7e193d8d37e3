//! The seed example (NodePort Service + ReplicationController with probes)
//! answers from the underlay; later features reuse its demo pods.

use std::time::{Duration, Instant};

use capstan_lab::cmd;
use libtest_mimic::Failed;
use serde_json::Value;

use crate::kube_suite::wait_for;
use crate::suite::*;
use crate::support::*;

pub const SEED: &str = r#"apiVersion: v1
kind: Service
metadata: {name: demo, namespace: default}
spec:
  type: NodePort
  selector: {app: demo}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
---
apiVersion: v1
kind: ReplicationController
metadata: {name: demo, namespace: default}
spec:
  replicas: 2
  selector: {app: demo}
  template:
    metadata: {labels: {app: demo}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        image: IMAGE
        command: ["/bin/capstan-testsrv", "serve", "--http", "0.0.0.0:8080"]
        ports: [{containerPort: 8080}]
        livenessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 5}
        readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
"#;

pub fn ready_demo_pods(s: &Suite) -> Option<Vec<Value>> {
    let list = s.get(&["pods", "-l", "app=demo"])?;
    let pods: Vec<Value> = list["items"].as_array()?.clone();
    (pods.len() == 2
        && pods
            .iter()
            .all(|p| condition(p, "Ready") == "True" && p["status"]["podIP"].is_string()))
    .then_some(pods)
}

pub fn seed_example(s: &Suite) -> Result<(), Failed> {
    s.kubectl(
        &["apply", "--validate=false", "-f", "-"],
        Some(&SEED.replace("IMAGE", IMAGE)),
    )?;
    let t0 = Instant::now();
    wait_for(
        "2 demo pods Ready",
        Duration::from_secs(40),
        || ready_demo_pods(s),
        || s.log(),
    )?;
    eprintln!(
        "seed example: RC applied → 2 pods Ready in {:?}",
        t0.elapsed()
    );
    for i in 0..2 {
        let url = format!("http://{}:{NODE_PORT}/", s.lab.node(i).ip());
        let answer = wait_for(
            "an answer on the node port",
            Duration::from_secs(15),
            || {
                let mut c = s.cp.command("curl").ok()?;
                c.args(["-sf", "--max-time", "2", &url]);
                cmd::stdout(&mut c).ok().filter(|a| a.starts_with("demo-"))
            },
            || s.log(),
        )?;
        eprintln!("curl {url} from the underlay: {}", answer.trim());
    }
    Ok(())
}
