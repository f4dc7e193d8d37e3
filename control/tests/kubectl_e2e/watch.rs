//! Watching: `kubectl get -w` prints ADDED and MODIFIED events; objects
//! survive a crash and a restart of the server, and a watch resumes from a
//! resourceVersion issued before the restart.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use capstan_lab::wait::wait_for;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, WatchEvent, WatchParams};
use libtest_mimic::Failed;

use crate::clients::*;
use crate::manifests::*;
use crate::support::*;

pub fn get_watch_receives_an_event(s: &Suite) -> Result<(), Failed> {
    let mut c = s.cp().kubectl()?;
    c.args([
        "get",
        "configmaps",
        "-n",
        NS,
        "-w",
        "--output-watch-events",
        "-l",
        "watched=yes",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| format!("spawn kubectl -w: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Lines after the table's header (EVENT NAME AGE).
    let next_event = |timeout: Duration| loop {
        match rx.recv_timeout(timeout) {
            Ok(line) if line.starts_with("EVENT") => continue,
            Ok(line) => return Some(line),
            Err(_) => return None,
        }
    };
    let result = (|| -> Result<(), Failed> {
        // The watch is open once the (empty) initial list is done; creating
        // until an event shows covers the race with its start.
        let mut i = 0;
        let line = wait_for(
            "kubectl get -w to print an event",
            Duration::from_secs(20),
            || {
                let doc = configmap_yaml(&format!("watched-{i}"), "w")
                    .replace("suite: e2e", "suite: e2e\n    watched: \"yes\"");
                i += 1;
                if let Err(e) = create(s, &doc) {
                    return Some(Err(e));
                }
                next_event(Duration::from_secs(2)).map(Ok)
            },
        )??;
        check(
            line.starts_with("ADDED") && line.contains("watched-0"),
            || line.clone(),
        )?;
        kubectl_ok(s, &["label", "configmap", "watched-0", "-n", NS, "more=1"])?;
        let line = next_event(Duration::from_secs(10)).ok_or("no MODIFIED event")?;
        check(
            line.starts_with("MODIFIED") && line.contains("watched-0"),
            || line.clone(),
        )
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}

pub fn objects_survive_a_restart(s: &Suite) -> Result<(), Failed> {
    create(s, &configmap_yaml("durable", "kept"))?;
    let uid = get_path(s, "configmap", "durable", NS, "{.metadata.uid}")?;
    s.cp().crash_and_restart()?;
    let after = get_path(s, "configmap", "durable", NS, "{.metadata.uid} {.data.key}")?;
    check(after == format!("{uid} kept"), || after.clone())?;
    s.cp().restart()?;
    let after = get_path(s, "configmap", "durable", NS, "{.data.key}")?;
    check(after == "kept", || after.clone())?;
    Ok(())
}

pub fn watch_resumes_after_a_restart(s: &Suite) -> Result<(), Failed> {
    create(s, &configmap_yaml("resumed", "before"))?;
    let rv = get_path(s, "configmap", "resumed", NS, "{.metadata.resourceVersion}")?;
    s.cp().restart()?;
    kubectl_ok(
        s,
        &[
            "patch",
            "configmap",
            "resumed",
            "-n",
            NS,
            "--type=merge",
            "-p",
            r#"{"data":{"key":"after"}}"#,
        ],
    )?;
    let kc = s.admin_kubeconfig();
    with_kube(s, kc, move |client| {
        Box::pin(async move {
            use futures::{StreamExt, TryStreamExt};
            let cms: Api<ConfigMap> = Api::namespaced(client, NS);
            let wp = WatchParams::default()
                .fields("metadata.name=resumed")
                .timeout(10);
            let stream = cms
                .watch(&wp, &rv)
                .await
                .map_err(|e| format!("watch from {rv}: {e}"))?;
            let mut stream = stream.boxed();
            let first = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
                .await
                .map_err(|_| "no event after resuming")?
                .map_err(|e| format!("watch stream: {e}"))?
                .ok_or("watch ended without an event")?;
            match first {
                WatchEvent::Modified(cm) => {
                    let data = cm.data.unwrap_or_default();
                    check(data.get("key").map(String::as_str) == Some("after"), || {
                        format!("{data:?}")
                    })
                }
                other => Err(format!("first event after {rv}: {other:?}").into()),
            }
        })
    })?;
    // A resourceVersion that was never issued is still answered (not hung).
    let (code, _) = curl(
        s,
        Some("admin"),
        "GET",
        &format!("/api/v1/namespaces/{NS}/configmaps?watch=1&resourceVersion=1&timeoutSeconds=1"),
        None,
    )?;
    check(code == 200 || code == 410, || {
        format!("watch from rv 1: {code}")
    })?;
    Ok(())
}
