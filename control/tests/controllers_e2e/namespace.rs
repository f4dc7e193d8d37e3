//! Namespace deletion: Terminating while content (held by a finalizer)
//! remains, refusing new objects, gone once empty.

use std::time::Duration;

use capstan_lab::wait::wait_for;
use libtest_mimic::Failed;

use crate::fixture::*;
use crate::objects::*;

pub fn namespace_terminates_then_goes(s: &Suite) -> Result<(), Failed> {
    let ns = "doomed";
    namespace(s, ns)?;
    kubectl(
        s,
        &["create", "-f", "-"],
        Some(&deployment(ns, "w", 2, "capstan.local/busybox:latest", "")),
    )?;
    // A finalizer on a ConfigMap keeps the namespace Terminating.
    kubectl(
        s,
        &["create", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  namespace: {ns}\n  finalizers: [capstan.test/hold]\n"
        )),
    )?;
    wait_for("2 ready pods", Duration::from_secs(30), || {
        let p = pods(s, ns, "app=w");
        (p.len() == 2 && p.iter().all(ready)).then_some(())
    })?;
    kubectl(s, &["delete", "namespace", ns, "--wait=false"], None)?;
    let state = jsonpath(
        s,
        &["get", "namespace", ns],
        "{.status.phase} {.spec.finalizers}",
    );
    if !state.starts_with("Terminating") || !state.contains("kubernetes") {
        return Err(format!("namespace after delete: {state:?}").into());
    }
    let err = kubectl_err(
        s,
        &["create", "-f", "-", "--validate=false"],
        Some(&format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: late\n  namespace: {ns}\n"
        )),
    )?;
    if !err.contains("because it is being terminated") || !err.contains("forbidden") {
        return Err(format!("create in a Terminating namespace: {err}").into());
    }
    wait_for(
        "everything but the held ConfigMap gone",
        Duration::from_secs(30),
        || {
            (pods(s, ns, "app=w").is_empty()
                && replica_sets(s, ns, "app=w").is_empty()
                && !exists(s, ns, "deployment/w").unwrap_or(true)
                && exists(s, ns, "configmap/held").unwrap_or(false))
            .then_some(())
        },
    )?;
    if jsonpath(s, &["get", "namespace", ns], "{.status.phase}") != "Terminating" {
        return Err("the namespace went while a finalizer held its content".into());
    }
    remove_finalizers(s, ns, "configmap", "held")?;
    wait_for("the namespace gone", Duration::from_secs(30), || {
        let out = kubectl(
            s,
            &["get", "namespace", ns, "-o", "name", "--ignore-not-found"],
            None,
        );
        out.is_ok_and(|o| o.trim().is_empty()).then_some(())
    })
    .map_err(Failed::from)
}
