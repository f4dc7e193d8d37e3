//! The oldest client supported, kubectl 1.20 (OpenAPI v2 as protobuf, no
//! aggregated discovery): auth can-i, client-side validation, explain,
//! get, delete, apply twice with a server dry run, and its generators.

use std::process::Output;

use capstan_lab::kubectl;
use libtest_mimic::Failed;

use crate::manifests::*;
use crate::support::*;

/// Debian's kubectl 1.20 (kubernetes-client), unpacked beside the PATH one
/// by deploy/local/install-deps.sh: the oldest client supported, which
/// reads OpenAPI v2 as protobuf and knows no aggregated discovery.
pub const KUBECTL_1_20: &str = "/opt/capstan/kubectl-1.20/usr/bin/kubectl";

/// kubectl 1.20 as the admin, whatever its outcome.
fn kubectl_1_20(s: &Suite, args: &[&str], stdin: Option<&str>) -> Result<Output, Failed> {
    let admin = s.admin_kubeconfig();
    Ok(s.kubectl_output(Some(KUBECTL_1_20), &admin, args, stdin)?)
}

/// kubectl 1.20 that must succeed: its stdout.
fn kubectl_1_20_ok(s: &Suite, args: &[&str], stdin: Option<&str>) -> Result<String, Failed> {
    Ok(kubectl::success(args, kubectl_1_20(s, args, stdin)?)?)
}

/// kubectl 1.20 that must fail: its stderr.
fn kubectl_1_20_err(s: &Suite, args: &[&str], stdin: Option<&str>) -> Result<String, Failed> {
    Ok(kubectl::failure(args, kubectl_1_20(s, args, stdin)?)?)
}

/// kubectl 1.20 has `auth can-i` (authorization.k8s.io/v1), not `whoami`.
pub fn kubectl_1_20_auth_can_i(s: &Suite) -> Result<(), Failed> {
    let out = kubectl_1_20_ok(s, &["auth", "can-i", "create", "pods"], None)?;
    check(out.trim() == "yes", || out.clone())
}

/// Client-side validation and `explain` both read the protobuf OpenAPI v2
/// document: a manifest with an unknown field is refused before it is
/// sent, one with a missing required field too, a correct one is created.
pub fn kubectl_1_20_validates_explains_gets_deletes(s: &Suite) -> Result<(), Failed> {
    let version = kubectl_1_20_ok(s, &["version", "--client", "--short"], None)?;
    check(version.contains("v1.20."), || {
        format!("{KUBECTL_1_20} is {version}")
    })?;
    let out = kubectl_1_20_ok(s, &["explain", "pod.spec.containers"], None)?;
    check(
        out.contains("KIND:")
            && out.contains("Pod")
            && out.contains("RESOURCE: containers")
            && out.contains("image\t<string>"),
        || format!("explain pod.spec.containers:\n{out}"),
    )?;
    let out = kubectl_1_20_ok(s, &["explain", "deployment.spec.replicas"], None)?;
    check(out.contains("FIELD:") && out.contains("<integer>"), || {
        format!("explain deployment.spec.replicas:\n{out}")
    })?;
    let labels = "    suite: v120\n";
    let typo = pod_yaml("v120-typo", None, labels).replace("    image:", "    imagee:");
    let err = kubectl_1_20_err(s, &["create", "-f", "-"], Some(&typo))?;
    check(
        err.contains("ValidationError") && err.contains("unknown field \"imagee\""),
        || format!("unknown field: {err}"),
    )?;
    let nameless =
        pod_yaml("v120-nameless", None, labels).replace("  - name: main\n    image:", "  - image:");
    let err = kubectl_1_20_err(s, &["create", "-f", "-"], Some(&nameless))?;
    check(err.contains("missing required field \"name\""), || {
        format!("missing name: {err}")
    })?;
    let doc = format!(
        "{}---\n{}",
        pod_yaml("v120-pod", None, labels),
        configmap_yaml("v120-cm", "one")
    );
    let out = kubectl_1_20_ok(s, &["create", "-f", "-"], Some(&doc))?;
    check(
        out.contains("pod/v120-pod created") && out.contains("configmap/v120-cm created"),
        || out.clone(),
    )?;
    let result = (|| -> Result<(), Failed> {
        let pod = json(&kubectl_1_20_ok(
            s,
            &["get", "pod", "v120-pod", "-n", NS, "-o", "json"],
            None,
        )?)?;
        check(
            pod["spec"]["containers"][0]["image"] == "capstan.test/testsrv:latest",
            || format!("{pod}"),
        )?;
        let table = kubectl_1_20_ok(
            s,
            &["get", "pods,configmaps", "-n", NS, "-l", "suite=v120"],
            None,
        )?;
        check(table.contains("NAME") && table.contains("v120-pod"), || {
            table.clone()
        })?;
        let cms = kubectl_1_20_ok(s, &["get", "configmaps", "-n", NS], None)?;
        check(cms.contains("v120-cm"), || cms.clone())?;
        Ok(())
    })();
    let out = kubectl_1_20_ok(
        s,
        &["delete", "pod/v120-pod", "configmap/v120-cm", "-n", NS],
        None,
    )?;
    result?;
    check(
        out.contains("pod \"v120-pod\" deleted") && out.contains("configmap \"v120-cm\" deleted"),
        || out.clone(),
    )?;
    let err = kubectl_1_20_err(s, &["get", "configmap", "v120-cm", "-n", NS], None)?;
    check(
        err.contains("NotFound") || err.contains("not found"),
        || err.clone(),
    )?;
    Ok(())
}

/// `apply` with the OpenAPI patch metadata of the protobuf document: the
/// second apply of the same manifest changes nothing.
pub fn kubectl_1_20_apply_twice(s: &Suite) -> Result<(), Failed> {
    let doc = format!(
        "{}---\n{}",
        configmap_yaml("v120-applied", "v1"),
        deployment_yaml("v120-applied", 1)
    );
    let result = (|| -> Result<(), Failed> {
        let first = kubectl_1_20_ok(s, &["apply", "-f", "-"], Some(&doc))?;
        check(
            first.contains("configmap/v120-applied created")
                && first.contains("deployment.apps/v120-applied created"),
            || first.clone(),
        )?;
        let rv = || {
            get_path(
                s,
                "deployment",
                "v120-applied",
                NS,
                "{.metadata.resourceVersion}",
            )
        };
        let before = rv()?;
        let second = kubectl_1_20_ok(s, &["apply", "-f", "-"], Some(&doc))?;
        check(
            second.contains("configmap/v120-applied unchanged")
                && second.contains("deployment.apps/v120-applied unchanged"),
            || second.clone(),
        )?;
        check(rv()? == before, || {
            "the second apply wrote the deployment".into()
        })?;
        let changed = format!(
            "{}---\n{}",
            configmap_yaml("v120-applied", "v2"),
            deployment_yaml("v120-applied", 3)
        );
        // 1.20 allows a server dry run only where the OpenAPI document's
        // PATCH operation lists `dryRun`; it changes nothing.
        let dry = kubectl_1_20_ok(s, &["apply", "-f", "-", "--dry-run=server"], Some(&changed))?;
        check(
            dry.contains("deployment.apps/v120-applied configured (server dry run)"),
            || dry.clone(),
        )?;
        check(rv()? == before, || {
            "the dry run wrote the deployment".into()
        })?;
        let third = kubectl_1_20_ok(s, &["apply", "-f", "-"], Some(&changed))?;
        check(
            third.contains("configmap/v120-applied configured")
                && third.contains("deployment.apps/v120-applied configured"),
            || third.clone(),
        )?;
        let d = get_json(s, "deployment", "v120-applied", NS)?;
        check(
            d["spec"]["replicas"] == 3
                && d["spec"]["template"]["spec"]["containers"]
                    .as_array()
                    .is_some_and(|c| c.len() == 1),
            || format!("{d}"),
        )?;
        Ok(())
    })();
    let _ = kubectl_1_20(s, &["delete", "-f", "-", "--wait=false"], Some(&doc));
    result
}

/// 1.20's `create <kind>` generators.
pub fn kubectl_1_20_generators(s: &Suite) -> Result<(), Failed> {
    let ns = "v120-gen";
    kubectl_1_20_ok(s, &["create", "namespace", ns], None)?;
    let result = (|| -> Result<(), Failed> {
        let out = kubectl_1_20_ok(
            s,
            &[
                "create",
                "configmap",
                "gen-cm",
                "-n",
                ns,
                "--from-literal=greeting=hello world",
            ],
            None,
        )?;
        check(out.contains("configmap/gen-cm created"), || out.clone())?;
        kubectl_1_20_ok(
            s,
            &[
                "create",
                "secret",
                "generic",
                "gen-sec",
                "-n",
                ns,
                "--from-literal=password=s3cr3t",
            ],
            None,
        )?;
        kubectl_1_20_ok(
            s,
            &[
                "create",
                "deployment",
                "gen-web",
                "-n",
                ns,
                "--image=registry.local/web:1.2",
            ],
            None,
        )?;
        let cm = get_json(s, "configmap", "gen-cm", ns)?;
        check(cm["data"]["greeting"] == "hello world", || format!("{cm}"))?;
        let pw = get_path(s, "secret", "gen-sec", ns, "{.data.password}")?;
        check(base64_decode(&pw)? == b"s3cr3t", || format!("secret: {pw}"))?;
        let d = get_json(s, "deploy", "gen-web", ns)?;
        check(
            d["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/web:1.2"
                && d["spec"]["selector"]["matchLabels"]["app"] == "gen-web",
            || format!("deployment: {d}"),
        )?;
        Ok(())
    })();
    let _ = kubectl(s, &["delete", "namespace", ns, "--wait=false"], None);
    result
}
