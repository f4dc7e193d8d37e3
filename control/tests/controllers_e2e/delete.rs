//! Garbage collection: background cascade, foreground deletion waiting for
//! its dependents (held by a finalizer), and orphaning.

use std::time::{Duration, Instant};

use capstan_lab::wait::wait_for;
use libtest_mimic::Failed;

use crate::fixture::*;
use crate::objects::*;

pub fn cascade_delete(s: &Suite) -> Result<(), Failed> {
    let ns = "cascade";
    namespace(s, ns)?;
    kubectl(
        s,
        &["create", "-f", "-"],
        Some(&deployment(
            ns,
            "gone",
            3,
            "capstan.local/busybox:latest",
            "",
        )),
    )?;
    wait_for("3 pods", Duration::from_secs(30), || {
        (pods(s, ns, "app=gone").len() == 3).then_some(())
    })?;
    kubectl(s, &["-n", ns, "delete", "deployment", "gone"], None)?;
    wait_for("replicasets and pods gone", Duration::from_secs(30), || {
        let rs = jsonpath(
            s,
            &["-n", ns, "get", "replicasets"],
            "{.items[*].metadata.name}",
        );
        (rs.trim().is_empty() && pods(s, ns, "app=gone").is_empty()).then_some(())
    })
    .map_err(Failed::from)
}

pub fn foreground_delete_waits_for_dependents(s: &Suite) -> Result<(), Failed> {
    let ns = "foreground";
    namespace(s, ns)?;
    kubectl(
        s,
        &["create", "-f", "-"],
        Some(&deployment(ns, "fg", 2, "capstan.local/busybox:latest", "")),
    )?;
    let held = wait_for("2 ready pods", Duration::from_secs(30), || {
        let p = pods(s, ns, "app=fg");
        (p.len() == 2 && p.iter().all(ready)).then(|| p[0].metadata.name.clone())?
    })?;
    // A Service deleted in the foreground waits for its EndpointSlice,
    // which the endpoints controller must not write again meanwhile.
    kubectl(
        s,
        &["create", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: fgsvc\n  namespace: {ns}\nspec:\n  selector:\n    app: fg\n  ports:\n  - port: 80\n"
        )),
    )?;
    let slices = || {
        jsonpath(
            s,
            &[
                "-n",
                ns,
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=fgsvc",
            ],
            "{.items[*].metadata.name}",
        )
    };
    wait_for(
        "the service's endpointslice",
        Duration::from_secs(30),
        || (!slices().trim().is_empty()).then_some(()),
    )?;
    kubectl(
        s,
        &[
            "-n",
            ns,
            "delete",
            "service",
            "fgsvc",
            "--cascade=foreground",
            "--timeout=30s",
        ],
        None,
    )?;
    let left = slices();
    if !left.trim().is_empty() {
        return Err(format!("endpointslices outlived their service: {left}").into());
    }
    let delete_fg = || {
        kubectl(
            s,
            &[
                "-n",
                ns,
                "delete",
                "deployment",
                "fg",
                "--cascade=foreground",
                "--wait=false",
            ],
            None,
        )
    };
    // A finalizer on one pod holds the chain: pod, then its ReplicaSet,
    // then the Deployment.
    kubectl(
        s,
        &[
            "-n",
            ns,
            "patch",
            "pod",
            &held,
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":["capstan.test/hold"]}}"#,
        ],
        None,
    )?;
    delete_fg()?;
    wait_for(
        "only the held pod left, its ReplicaSet deleting in the foreground",
        Duration::from_secs(30),
        || {
            let p = pods(s, ns, "app=fg");
            let only_held = p.len() == 1
                && p[0].metadata.name.as_deref() == Some(held.as_str())
                && p[0].metadata.deletion_timestamp.is_some();
            let rs = replica_sets(s, ns, "app=fg");
            let rs_waits = rs.len() == 1
                && rs[0].metadata.deletion_timestamp.is_some()
                && rs[0]
                    .metadata
                    .finalizers
                    .iter()
                    .flatten()
                    .any(|f| f == "foregroundDeletion");
            (only_held && rs_waits).then_some(())
        },
    )?;
    let d = jsonpath(
        s,
        &["-n", ns, "get", "deployment", "fg"],
        "{.metadata.deletionTimestamp} {.metadata.finalizers}",
    );
    if !d.contains("foregroundDeletion") || !d.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("deployment while its dependents go: {d:?}").into());
    }
    // A second delete changes nothing and answers with the object.
    let again = delete_fg()?;
    if !again.contains("fg") || !exists(s, ns, "deployment/fg")? {
        return Err(format!("second delete: {again:?}").into());
    }
    // No finalizer may be added once deletion started.
    let err = kubectl_err(
        s,
        &[
            "-n",
            ns,
            "patch",
            "deployment",
            "fg",
            "--type=json",
            "-p",
            r#"[{"op":"add","path":"/metadata/finalizers/-","value":"capstan.test/late"}]"#,
        ],
        None,
    )?;
    if !err.contains("no new finalizers can be added") {
        return Err(format!("adding a finalizer while deleting: {err}").into());
    }
    // Releasing the pod lets everything go, bottom up.
    remove_finalizers(s, ns, "pod", &held)?;
    wait_for("the deployment gone", Duration::from_secs(30), || {
        (!exists(s, ns, "deployment/fg").unwrap_or(true)
            && replica_sets(s, ns, "app=fg").is_empty()
            && pods(s, ns, "app=fg").is_empty())
        .then_some(())
    })
    .map_err(Failed::from)
}

pub fn orphan_delete_keeps_dependents(s: &Suite) -> Result<(), Failed> {
    let ns = "orphan";
    namespace(s, ns)?;
    kubectl(
        s,
        &["create", "-f", "-"],
        Some(&deployment(
            ns,
            "orph",
            2,
            "capstan.local/busybox:latest",
            "",
        )),
    )?;
    wait_for("2 ready pods", Duration::from_secs(30), || {
        let p = pods(s, ns, "app=orph");
        (p.len() == 2 && p.iter().all(ready)).then_some(())
    })?;
    kubectl(
        s,
        &[
            "-n",
            ns,
            "delete",
            "deployment",
            "orph",
            "--cascade=orphan",
            "--timeout=30s",
        ],
        None,
    )?;
    if exists(s, ns, "deployment/orph")? {
        return Err("the deployment outlived kubectl delete --wait".into());
    }
    let rs = replica_sets(s, ns, "app=orph");
    let [rs] = rs.as_slice() else {
        return Err(format!("{} replicasets after an orphan delete, want 1", rs.len()).into());
    };
    if rs
        .metadata
        .owner_references
        .as_ref()
        .is_some_and(|o| !o.is_empty())
    {
        return Err(format!(
            "orphaned replicaset still owned: {:?}",
            rs.metadata.owner_references
        )
        .into());
    }
    // The orphaned ReplicaSet keeps its pods: watch a few controller passes.
    let end = Instant::now() + Duration::from_secs(1);
    while Instant::now() < end {
        let p = pods(s, ns, "app=orph");
        if p.len() != 2 || !p.iter().all(ready) {
            return Err(format!("{} pods after the orphan delete, want 2 ready", p.len()).into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Deleting the ReplicaSet (background, kubectl's default) takes them.
    let name = rs.metadata.name.clone().unwrap_or_default();
    kubectl(s, &["-n", ns, "delete", "replicaset", &name], None)?;
    wait_for("pods gone", Duration::from_secs(30), || {
        pods(s, ns, "app=orph").is_empty().then_some(())
    })
    .map_err(Failed::from)
}
