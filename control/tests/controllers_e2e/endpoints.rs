//! Endpoints and EndpointSlices follow pod readiness: an unready pod moves
//! to notReadyAddresses and back.

use std::time::Duration;

use capstan_lab::simnode::NOT_READY_LABEL;
use capstan_lab::wait::wait_for;
use libtest_mimic::Failed;

use crate::fixture::*;
use crate::objects::*;

pub fn endpoints_follow_readiness(s: &Suite) -> Result<(), Failed> {
    let ns = "eps";
    namespace(s, ns)?;
    kubectl(
        s,
        &["create", "-f", "-"],
        Some(&deployment(
            ns,
            "api",
            2,
            "capstan.local/busybox:latest",
            "",
        )),
    )?;
    let svc = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: api\n  namespace: {ns}\nspec:\n  selector:\n    app: api\n  ports:\n  - name: http\n    port: 80\n    targetPort: 8080\n"
    );
    kubectl(s, &["create", "-f", "-"], Some(&svc))?;
    let ready_ips = || {
        jsonpath(
            s,
            &["-n", ns, "get", "endpoints", "api"],
            "{.subsets[*].addresses[*].ip}",
        )
    };
    let not_ready_ips = || {
        jsonpath(
            s,
            &["-n", ns, "get", "endpoints", "api"],
            "{.subsets[*].notReadyAddresses[*].ip}",
        )
    };
    wait_for("two ready endpoints", Duration::from_secs(30), || {
        (ready_ips().split_whitespace().count() == 2).then_some(())
    })?;
    let port = jsonpath(
        s,
        &["-n", ns, "get", "endpoints", "api"],
        "{.subsets[0].ports[0].port}",
    );
    if port != "8080" {
        return Err(format!("endpoint port {port}, want 8080").into());
    }
    // One pod turns unready: it moves to notReadyAddresses, and the slice says so.
    let victim = pods(s, ns, "app=api")
        .into_iter()
        .next()
        .and_then(|p| p.metadata.name)
        .ok_or("no pod")?;
    // `=false` makes the simulated pod unready, `-` (the label removed) ready.
    let label_victim = |change: &str| {
        let label = format!("{NOT_READY_LABEL}{change}");
        kubectl(s, &["-n", ns, "label", "pod", &victim, &label], None)
    };
    label_victim("=false")?;
    wait_for("one ready, one not ready", Duration::from_secs(30), || {
        (ready_ips().split_whitespace().count() == 1
            && not_ready_ips().split_whitespace().count() == 1)
            .then_some(())
    })?;
    let slice_ready = jsonpath(
        s,
        &[
            "-n",
            ns,
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=api",
        ],
        "{.items[*].endpoints[*].conditions.ready}",
    );
    if slice_ready
        .split_whitespace()
        .filter(|x| *x == "true")
        .count()
        != 1
    {
        return Err(format!("endpointslice readiness: {slice_ready}").into());
    }
    label_victim("-")?;
    wait_for("both ready again", Duration::from_secs(30), || {
        (ready_ips().split_whitespace().count() == 2).then_some(())
    })
    .map_err(Failed::from)
}
