//! Pulling from the lab registry with a pull secret, and back-off for bad
//! references.

use std::time::{Duration, Instant};

use libtest_mimic::Failed;
use serde_json::Value;

use crate::suite::*;
use crate::support::*;

/// The registry needs basic auth; the pod's imagePullSecret (a Secret in
/// the manifest directory, as static pods take them) carries it. A pulled
/// image runs; a missing one and one pulled without credentials end in
/// ImagePullBackOff with the registry's reason.
pub fn registry_pulls(s: &Suite) -> Result<(), Failed> {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let node = &s.lab.node(0);
    let password = format!("pw-{}", std::process::id());
    let hash = bcrypt::hash(&password, 4).map_err(|e| e.to_string())?;
    let registry =
        capstan_lab::registry::Registry::start(node, 5000, Some(&format!("lab:{hash}\n")))
            .map_err(|e| e.to_string())?;
    let archive = capstan_lab::registry::test_image_archive().map_err(|e| e.to_string())?;
    let image = registry
        .push(
            node,
            &archive,
            "capstan/pulled:v1",
            Some(("lab", &password)),
        )
        .map_err(|e| e.to_string())?;
    check(
        !s.ctr(&["images", "ls", "-q"])?.contains(&image),
        "the image is present before any pull",
    )?;
    let docker_config = serde_json::json!({"auths": {&registry.host: {"auth": b64(format!("lab:{password}").as_bytes())}}});
    let pod = |name: &str, image: &str, secret: bool| {
        let secrets = if secret {
            "  imagePullSecrets: [{name: regcred}]\n"
        } else {
            ""
        };
        format!(
            r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 1
{secrets}  containers:
  - name: main
    image: {image}
    command: ["sleep", "3600"]
"#
        )
    };
    let t0 = Instant::now();
    s.put(
        "pull.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: regcred\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {}\n---\n{}",
            b64(docker_config.to_string().as_bytes()),
            pod("pulled", &image, true)
        ),
    );
    let st = s.wait_status("pulled", "Running", Duration::from_secs(30), running)?;
    eprintln!(
        "pulled: manifest → Running (with the pull) in {:?}",
        t0.elapsed()
    );
    let c = container(&st, "main");
    check(
        c["imageID"]
            .as_str()
            .is_some_and(|i| i.contains("@sha256:")),
        format!("imageID {}", c["imageID"]),
    )?;
    check(
        s.ctr(&["images", "ls", "-q"])?.contains(&image),
        "pulled image not in containerd's image store",
    )?;

    // Present in the registry, but asked for without credentials: 401.
    let private = registry
        .push(
            node,
            &archive,
            "capstan/private:v1",
            Some(("lab", &password)),
        )
        .map_err(|e| e.to_string())?;
    let missing = format!("{}/capstan/missing:v1", registry.host);
    s.put(
        "missing.yaml",
        &format!(
            "{}---\n{}",
            pod("missing", &missing, true),
            pod("nocreds", &private, false)
        ),
    );
    let waiting = |st: &Value, field: &str| {
        container(st, "main")["state"]["waiting"][field]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    for (name, why) in [
        ("missing", "manifest unknown"),
        ("nocreds", "not authorized"),
    ] {
        let st = s.wait_status(name, "ImagePullBackOff", Duration::from_secs(20), |st| {
            waiting(st, "reason") == "ImagePullBackOff"
        })?;
        let msg = waiting(&st, "message");
        check(
            msg.contains("Back-off pulling image") && msg.to_lowercase().contains(why),
            format!("{name}: waiting message {msg:?} does not say {why:?}"),
        )?;
        check(
            phase(&st) == "Pending",
            format!("{name}: phase {}", phase(&st)),
        )?;
        eprintln!("{name}: {msg}");
    }
    s.delete("pull.yaml");
    s.delete("missing.yaml");
    for name in ["pulled", "missing", "nocreds"] {
        wait_for(&format!("{name} gone"), Duration::from_secs(20), || {
            s.status(name).is_none()
        })?;
    }
    Ok(())
}
