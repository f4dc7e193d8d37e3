//! Images: an unparsable reference waits as InvalidImageName without a
//! pull; the lab registry serves a pull secret's image, a missing tag ends
//! in ImagePullBackOff.

use std::time::{Duration, Instant};

use capstan_lab::cmd;
use libtest_mimic::Failed;
use serde_json::Value;

use crate::kube_suite::wait_for;
use crate::kube_suite::{json_objects, Stream};
use crate::suite::*;
use crate::support::*;

/// An image reference that does not parse: kubelet's `InvalidImageName`
/// with its message and Events, and no pull (no ErrImagePull at any point
/// of a watch that began before the pod existed).
pub fn invalid_image_name(s: &Suite) -> Result<(), Failed> {
    let node = s.lab.node(1).name().to_string();
    let image = "Bad_Image::x";
    let want = format!(
        "Failed to apply default image tag {image:?}: couldn't parse image reference \
         {image:?}: invalid reference format: repository name (library/Bad_Image) must be lowercase"
    );
    let mut watch = Stream::start(
        s.kubectl_child(&["get", "pods", "-l", "bad=name", "-o", "json", "-w"])?,
        json_objects,
    )?;
    s.kubectl(
        &["apply", "--validate=false", "-f", "-"],
        Some(&format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: badname, namespace: default, labels: {{bad: name}}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: "{image}"
"#
        )),
    )?;
    let st = match watch.until(Duration::from_secs(20), |p| {
        waiting(p, "reason") == "InvalidImageName"
    }) {
        Ok(p) => p,
        Err(ended) => {
            let stderr = watch.stderr();
            return Err(format!(
                "badname: no InvalidImageName (ended: {ended}): {stderr}\n{}",
                s.log()
            )
            .into());
        }
    };
    let reasons: Vec<String> = watch.seen.iter().map(|p| waiting(p, "reason")).collect();
    drop(watch);
    let c = &st["status"]["containerStatuses"][0];
    if waiting(&st, "message") != want
        || reasons
            .iter()
            .any(|r| !r.is_empty() && r != "InvalidImageName")
        || c["restartCount"] != 0
        || st["status"]["phase"] != "Pending"
    {
        return Err(format!("badname: reasons {reasons:?}, status {}", st["status"]).into());
    }
    events_for(
        s,
        "badname",
        &[
            ("InspectFailed", &want),
            ("Failed", "Error: InvalidImageName"),
        ],
    )?;
    eprintln!("invalid image: reasons {reasons:?}: {want}");
    delete_pod(s, "badname")
}

/// The lab's registry (on node-1's underlay address, basic auth): a pod on
/// node-2 whose image is only there runs with a `kubectl create secret
/// docker-registry` pull secret; a missing tag goes ErrImagePull →
/// ImagePullBackOff with the registry's reason, as `kubectl get -w` sees.
pub fn registry_pulls(s: &Suite) -> Result<(), Failed> {
    let registry_node = s.lab.node(0);
    let node = s.lab.node(1).name().to_string();
    let password = format!("pw-{}", std::process::id());
    let hash = bcrypt::hash(&password, 4).map_err(|e| e.to_string())?;
    let registry = capstan_lab::registry::Registry::start_at(
        &registry_node,
        registry_node.ip(),
        REGISTRY_PORT,
        Some(&format!("lab:{hash}\n")),
    )
    .map_err(|e| e.to_string())?;
    if registry.host != s.registry_host() {
        return Err(format!(
            "registry at {}, agents told {}",
            registry.host,
            s.registry_host()
        )
        .into());
    }
    let archive = capstan_lab::registry::test_image_archive().map_err(|e| e.to_string())?;
    let image = registry
        .push(
            &registry_node,
            &archive,
            "capstan/pulled:v1",
            Some(("lab", &password)),
        )
        .map_err(|e| e.to_string())?;
    s.kubectl(
        &[
            "create",
            "secret",
            "docker-registry",
            "regcred",
            &format!("--docker-server={}", registry.host),
            "--docker-username=lab",
            &format!("--docker-password={password}"),
        ],
        None,
    )?;
    let pod = |name: &str, image: &str| {
        format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: default, labels: {{pull: lab}}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  imagePullSecrets: [{{name: regcred}}]
  containers:
  - name: main
    image: {image}
    command: ["sleep", "3600"]
"#
        )
    };
    let t0 = Instant::now();
    s.kubectl(
        &["apply", "--validate=false", "-f", "-"],
        Some(&pod("pulled", &image)),
    )?;
    let st = wait_for(
        "pulled Running",
        Duration::from_secs(60),
        || {
            s.get(&["pod", "pulled"])
                .filter(|p| p["status"]["containerStatuses"][0]["state"]["running"].is_object())
        },
        || format!("{}\npod: {:?}", s.log(), s.get(&["pod", "pulled"])),
    )?;
    let pulled_in = t0.elapsed();
    let c = &st["status"]["containerStatuses"][0];
    if c["image"] != image.as_str()
        || !c["imageID"]
            .as_str()
            .is_some_and(|i| i.contains("@sha256:"))
    {
        return Err(format!("pulled: {c}").into());
    }
    let mut ctr = s.lab.node(1).ctr().map_err(|e| e.to_string())?;
    let images = cmd::stdout(ctr.args(["images", "ls", "-q"])).map_err(|e| e.to_string())?;
    if !images.lines().any(|l| l == image) {
        return Err(format!("{image} not in node-2's containerd: {images}").into());
    }

    // Watched from before it exists (ErrImagePull lasts one 2 s retry):
    // once the watch printed `pulled`, its list is done and every later
    // change arrives.
    let mut watch = Stream::start(
        s.kubectl_child(&["get", "pods", "-l", "pull=lab", "-o", "json", "-w"])?,
        json_objects,
    )?;
    if let Err(ended) = watch.until(Duration::from_secs(15), |p| {
        p["metadata"]["name"] == "pulled"
    }) {
        let stderr = watch.stderr();
        return Err(format!("get -w: no pulled (ended: {ended}): {stderr}").into());
    }
    let missing = format!("{}/capstan/missing:v1", registry.host);
    s.kubectl(
        &["apply", "--validate=false", "-f", "-"],
        Some(&pod("badref", &missing)),
    )?;
    let badref = |p: &&Value| p["metadata"]["name"] == "badref";
    let reasons = |seen: &[Value]| {
        let mut r: Vec<String> = seen
            .iter()
            .filter(badref)
            .map(|p| waiting(p, "reason"))
            .collect();
        r.dedup();
        r
    };
    let backoff = match watch.until(Duration::from_secs(30), |p| {
        badref(&p) && waiting(p, "reason") == "ImagePullBackOff"
    }) {
        Ok(p) => p,
        Err(ended) => {
            let stderr = watch.stderr();
            return Err(format!(
                "badref: no ImagePullBackOff (watch ended: {ended}); reasons {:?}: {stderr}\n{}",
                reasons(&watch.seen),
                s.log()
            )
            .into());
        }
    };
    let seen = reasons(&watch.seen);
    let msg = waiting(&backoff, "message");
    let pull_error = watch
        .seen
        .iter()
        .filter(badref)
        .find(|p| waiting(p, "reason") == "ErrImagePull")
        .map(|p| waiting(p, "message"));
    // ErrImagePull came first: the watch stopped at ImagePullBackOff.
    if !pull_error
        .as_deref()
        .is_some_and(|m| m.to_lowercase().contains("manifest unknown"))
        || !msg.contains("Back-off pulling image")
        || !msg.contains(&missing)
        || !msg.to_lowercase().contains("manifest unknown")
        || backoff["status"]["phase"] != "Pending"
    {
        return Err(format!(
            "badref: reasons {seen:?}, ErrImagePull message {pull_error:?}, back-off message {msg:?}, phase {}",
            backoff["status"]["phase"]
        )
        .into());
    }
    drop(watch);
    events_for(
        s,
        "badref",
        &[
            ("Failed", "manifest unknown"),
            ("BackOff", "Back-off pulling image"),
        ],
    )?;
    eprintln!("registry: pulled and Running in {pulled_in:?}; bad reference: {seen:?}: {msg}");
    for name in ["pulled", "badref"] {
        delete_pod(s, name)?;
    }
    s.kubectl(&["delete", "secret", "regcred"], None)?;
    Ok(())
}
