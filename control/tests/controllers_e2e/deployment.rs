//! Deployments end to end: scaling 0 → 50 → 5 across every node, a
//! rolling update that never drops below the desired ready count (and its
//! undo), and a server crash in the middle of a rollout.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use capstan_lab::wait::wait_for;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use libtest_mimic::Failed;

use crate::fixture::*;
use crate::objects::*;

pub fn deployment_scales_0_50_5(s: &Suite) -> Result<(), Failed> {
    let ns = "scale";
    namespace(s, ns)?;
    kubectl(
        s,
        &["create", "-f", "-"],
        Some(&deployment(ns, "web", 0, "capstan.local/busybox:v1", "")),
    )?;
    kubectl(
        s,
        &["-n", ns, "scale", "deployment/web", "--replicas=50"],
        None,
    )?;
    wait_for("50 ready replicas", Duration::from_secs(60), || {
        (jsonpath(
            s,
            &["-n", ns, "get", "deployment", "web"],
            "{.status.readyReplicas}",
        ) == "50")
            .then_some(())
    })?;
    let live = pods(s, ns, "app=web").into_iter().filter(ready).count();
    if live != 50 {
        return Err(format!("{live} ready pods, want 50").into());
    }
    // Spread over every node.
    let spread: std::collections::HashSet<String> = pods(s, ns, "app=web")
        .iter()
        .filter_map(|p| p.spec.as_ref().and_then(|x| x.node_name.clone()))
        .collect();
    if spread.len() != 3 {
        return Err(format!("pods on {spread:?}, want all three nodes").into());
    }
    kubectl(
        s,
        &["-n", ns, "scale", "deployment/web", "--replicas=5"],
        None,
    )?;
    wait_for("5 pods left", Duration::from_secs(60), || {
        let p = pods(s, ns, "app=web");
        (p.len() == 5 && p.iter().all(ready)).then_some(())
    })?;
    wait_for("status says 5", Duration::from_secs(20), || {
        (jsonpath(
            s,
            &["-n", ns, "get", "deployment", "web"],
            "{.status.replicas}",
        ) == "5")
            .then_some(())
    })
    .map_err(Failed::from)
}

pub fn rolling_update_keeps_desired_ready(s: &Suite) -> Result<(), Failed> {
    let ns = "roll";
    namespace(s, ns)?;
    kubectl(
        s,
        &["create", "-f", "-"],
        Some(&deployment(
            ns,
            "roll",
            4,
            "capstan.local/busybox:v1",
            SURGE_ONE,
        )),
    )?;
    rollout_status(s, ns, "roll", "60s")?;
    // Sample the ready count while the rollout runs.
    let min_ready = Arc::new(AtomicUsize::new(usize::MAX));
    let sampler = {
        let min_ready = min_ready.clone();
        Sampler::start(s, ns, "app=roll", move |pods| {
            let n = pods.iter().filter(|p| ready(p)).count();
            min_ready.fetch_min(n, SeqCst);
        })
    };
    set_image(s, ns, "roll", "capstan.local/busybox:v2")?;
    let status = rollout_status(s, ns, "roll", "90s");
    sampler.stop(s);
    status?;
    let min = min_ready.load(SeqCst);
    if min < 4 {
        return Err(
            format!("ready pods dropped to {min} during a maxUnavailable=0 rollout").into(),
        );
    }
    let images: Vec<String> = pods(s, ns, "app=roll")
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.spec.as_ref().and_then(|x| x.containers[0].image.clone()))
        .collect();
    if images.len() != 4 || images.iter().any(|i| !i.ends_with(":v2")) {
        return Err(format!("after the rollout: {images:?}").into());
    }
    // Back to the previous template.
    kubectl(s, &["-n", ns, "rollout", "undo", "deployment/roll"], None)?;
    rollout_status(s, ns, "roll", "90s")?;
    let image = jsonpath(
        s,
        &["-n", ns, "get", "deployment", "roll"],
        "{.spec.template.spec.containers[0].image}",
    );
    if image != "capstan.local/busybox:v1" {
        return Err(format!("rollout undo left image {image}").into());
    }
    Ok(())
}

pub fn crash_mid_rollout_finishes_without_duplicates(s: &Suite) -> Result<(), Failed> {
    let ns = "crash";
    namespace(s, ns)?;
    kubectl(
        s,
        &["create", "-f", "-"],
        Some(&deployment(
            ns,
            "rr",
            6,
            "capstan.local/busybox:v1",
            SURGE_ONE,
        )),
    )?;
    rollout_status(s, ns, "rr", "90s")?;
    // Samples the live pods of the deployment through the whole rollout.
    let most = Arc::new(AtomicUsize::new(0));
    let old_after_crash = Arc::new(AtomicUsize::new(0));
    let crashed = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (most, old_after_crash, crashed) =
            (most.clone(), old_after_crash.clone(), crashed.clone());
        Sampler::start(s, ns, "app=rr", move |pods| {
            let live: Vec<&Pod> = pods
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            most.fetch_max(live.len(), SeqCst);
            if crashed.load(SeqCst) {
                let old = live.iter().filter(|p| image(p).ends_with(":v1")).count();
                old_after_crash.fetch_max(old, SeqCst);
            }
        })
    };
    let result = (|| -> Result<(), Failed> {
        set_image(s, ns, "rr", "capstan.local/busybox:v2")?;
        wait_for("the rollout under way", Duration::from_secs(30), || {
            let p = pods(s, ns, "app=rr");
            (p.iter().filter(|p| image(p).ends_with(":v2")).count() >= 2).then_some(())
        })?;
        crashed.store(true, SeqCst);
        let t = Instant::now();
        s.base.cp().crash_and_restart()?;
        eprintln!(
            "capstan-control killed and ready again in {:?}",
            t.elapsed()
        );
        rollout_status(s, ns, "rr", "90s").map(|_| ())
    })();
    sampler.stop(s);
    result?;
    let (most, old) = (most.load(SeqCst), old_after_crash.load(SeqCst));
    if most > 7 {
        return Err(format!("{most} live pods at once, more than replicas + maxSurge = 7").into());
    }
    if old == 0 {
        return Err("the rollout had finished before the crash: nothing was tested".into());
    }
    let rs = replica_sets(s, ns, "app=rr");
    let new: Vec<&ReplicaSet> = rs
        .iter()
        .filter(|r| {
            r.spec
                .as_ref()
                .and_then(|x| x.template.as_ref())
                .and_then(|t| t.spec.as_ref())
                .and_then(|x| x.containers.first())
                .and_then(|c| c.image.as_deref())
                == Some("capstan.local/busybox:v2")
        })
        .collect();
    let [new] = new.as_slice() else {
        return Err(format!("{} replicasets for the new template, want 1", new.len()).into());
    };
    let hash = new
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("pod-template-hash"))
        .cloned()
        .unwrap_or_default();
    let live: Vec<Pod> = pods(s, ns, "app=rr")
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    let of_new = live
        .iter()
        .filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("pod-template-hash"))
                == Some(&hash)
        })
        .count();
    if hash.is_empty() || live.len() != 6 || of_new != 6 || rs.len() != 2 {
        return Err(format!(
            "after the rollout: {} live pods, {of_new} of the new template {hash:?}, {} replicasets",
            live.len(),
            rs.len()
        )
        .into());
    }
    eprintln!("crash mid-rollout: at most {most} live pods, {old} old ones left after the crash");
    Ok(())
}

/// A rolling update that keeps every desired pod ready: one extra at a time.
const SURGE_ONE: &str = "  strategy:\n    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 1\n      maxUnavailable: 0\n";

fn rollout_status(s: &Suite, ns: &str, name: &str, timeout: &str) -> Result<String, Failed> {
    let deployment = format!("deployment/{name}");
    let timeout = format!("--timeout={timeout}");
    kubectl(
        s,
        &["-n", ns, "rollout", "status", &deployment, &timeout],
        None,
    )
}

/// Sets the image of the deployment's container `c`: a new template.
fn set_image(s: &Suite, ns: &str, name: &str, image: &str) -> Result<String, Failed> {
    let deployment = format!("deployment/{name}");
    let container = format!("c={image}");
    kubectl(
        s,
        &["-n", ns, "set", "image", &deployment, &container],
        None,
    )
}

/// Lists the pods matching a selector every 20 ms while a rollout runs and
/// hands each list to `see`, until stopped.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    pub fn start(
        s: &Suite,
        ns: &str,
        selector: &str,
        mut see: impl FnMut(&[Pod]) + Send + 'static,
    ) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let api: Api<Pod> = Api::namespaced(s.client.clone(), ns);
        let lp = ListParams::default().labels(selector);
        let task = {
            let stop = stop.clone();
            s.rt.spawn(async move {
                while !stop.load(SeqCst) {
                    if let Ok(l) = api.list(&lp).await {
                        see(&l.items);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        Sampler { stop, task }
    }

    pub fn stop(self, s: &Suite) {
        self.stop.store(true, SeqCst);
        let _ = s.rt.block_on(self.task);
    }
}
