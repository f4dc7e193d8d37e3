//! The scheduler's answer for a pod that fits nowhere: a FailedScheduling
//! event with Kubernetes' message and a False PodScheduled condition.

use std::time::Duration;

use capstan_lab::wait::wait_for;
use libtest_mimic::Failed;

use crate::fixture::*;
use crate::objects::*;

pub fn unschedulable_pod_explains_why(s: &Suite) -> Result<(), Failed> {
    let ns = "nofit";
    namespace(s, ns)?;
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: huge\n  namespace: {ns}\nspec:\n  containers:\n  - name: c\n    image: capstan.local/busybox:latest\n    resources:\n      requests:\n        cpu: \"100\"\n"
    );
    kubectl(s, &["create", "-f", "-"], Some(&pod))?;
    let msg = wait_for("a FailedScheduling event", Duration::from_secs(30), || {
        let m = jsonpath(
            s,
            &[
                "-n",
                ns,
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=huge,reason=FailedScheduling",
            ],
            "{.items[0].message}",
        );
        (!m.is_empty()).then_some(m)
    })?;
    let nodes = jsonpath(s, &["get", "nodes"], "{.items[*].metadata.name}")
        .split_whitespace()
        .count();
    let want = format!("0/{nodes} nodes are available: {nodes} Insufficient cpu.");
    if msg != want {
        return Err(format!("event message {msg:?}, want {want:?}").into());
    }
    let cond = jsonpath(
        s,
        &["-n", ns, "get", "pod", "huge"],
        "{.status.conditions[?(@.type==\"PodScheduled\")].status}",
    );
    if cond != "False" {
        return Err(format!("PodScheduled condition {cond:?}").into());
    }
    let describe = kubectl(s, &["-n", ns, "describe", "pod", "huge"], None)?;
    if !describe.contains("FailedScheduling") {
        return Err(
            format!("kubectl describe shows no FailedScheduling event:\n{describe}").into(),
        );
    }
    Ok(())
}
