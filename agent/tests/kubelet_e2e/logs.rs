//! `kubectl logs -f` streams what a container prints after it began and
//! ends with the container; `--previous` shows the attempt before.

use std::time::{Duration, Instant};

use libtest_mimic::Failed;

use crate::kube_suite::wait_for;
use crate::kube_suite::{lines, Stream};
use crate::suite::*;
use crate::support::*;

/// `kubectl logs -f` (capstan-control → the agent's API on :10250) shows a
/// line the container prints only after the stream began, and ends when
/// the container exits; after the restart `--previous` shows that attempt.
pub fn logs_follow(s: &Suite) -> Result<(), Failed> {
    let dir = shared_dir(s, 0, "chatty")?;
    let node = s.lab.node(0).name().to_string();
    s.kubectl(
        &["apply", "--validate=false", "-f", "-"],
        Some(&format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: chatty, namespace: default}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  volumes: [{{name: t, hostPath: {{path: {dir}}}}}]
  containers:
  - name: main
    image: {IMAGE}
    volumeMounts: [{{name: t, mountPath: /t}}]
    command:
    - sh
    - -c
    - |
      echo started
      while true; do
        if [ -f /t/say ]; then cat /t/say; rm -f /t/say; fi
        if [ -f /t/quit ]; then rm -f /t/quit; echo bye; exit 3; fi
        sleep 0.1
      done
"#,
            dir = dir.display()
        )),
    )?;
    wait_for(
        "chatty Running",
        Duration::from_secs(30),
        || {
            s.get(&["pod", "chatty"])
                .filter(|p| p["status"]["containerStatuses"][0]["state"]["running"].is_object())
        },
        || s.log(),
    )?;
    let mut follow = Stream::start(s.kubectl_child(&["logs", "-f", "chatty"])?, lines)?;
    if let Err(ended) = follow.until(Duration::from_secs(15), |l| l == "started") {
        let stderr = follow.stderr();
        return Err(format!(
            "logs -f: no \"started\" (ended: {ended}; got {:?}): {stderr}\n{}",
            follow.seen,
            s.log()
        )
        .into());
    }
    let word = format!("said-after-the-stream-began-{}", std::process::id());
    hand_over(&dir, "say", &format!("{word}\n"))?;
    let t0 = Instant::now();
    if let Err(ended) = follow.until(Duration::from_secs(10), |l| *l == word) {
        let stderr = follow.stderr();
        return Err(format!(
            "logs -f: {word:?} did not arrive (ended: {ended}; got {:?}): {stderr}",
            follow.seen
        )
        .into());
    }
    let latency = t0.elapsed();
    hand_over(&dir, "quit", "")?;
    // The container's exit ends the stream, as kubelet's follow does.
    match follow.until(Duration::from_secs(15), |_| false) {
        Err(true) => {}
        _ => {
            return Err(format!(
                "logs -f did not end after the container exited; got {:?}",
                follow.seen
            )
            .into())
        }
    }
    if follow.seen.last().map(String::as_str) != Some("bye") {
        return Err(format!("logs -f: last line not \"bye\": {:?}", follow.seen).into());
    }
    drop(follow);
    wait_for(
        "chatty restarted",
        Duration::from_secs(30),
        || {
            s.get(&["pod", "chatty"]).filter(|p| {
                p["status"]["containerStatuses"][0]["restartCount"] == 1
                    && p["status"]["containerStatuses"][0]["state"]["running"].is_object()
            })
        },
        || s.log(),
    )?;
    let previous = s.kubectl(&["logs", "chatty", "--previous"], None)?;
    let want = format!("started\n{word}\nbye\n");
    if previous != want {
        return Err(format!("logs --previous: {previous:?}, want {want:?}").into());
    }
    let current = s.kubectl(&["logs", "chatty"], None)?;
    if current != "started\n" {
        return Err(format!("logs after the restart: {current:?}").into());
    }
    eprintln!("logs -f: a new line arrived {latency:?} after it was written");
    delete_pod(s, "chatty")?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
