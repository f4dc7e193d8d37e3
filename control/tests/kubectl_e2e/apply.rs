//! Writing objects with kubectl: create/get/describe/delete, apply twice
//! (the second a no-op), patches and `kubectl edit`, scale, and a stale
//! update refused as a Conflict.

use capstan_lab::kubectl;
use libtest_mimic::Failed;

use crate::clients::*;
use crate::manifests::*;
use crate::support::*;

pub fn create_get_describe_delete(s: &Suite) -> Result<(), Failed> {
    let out = create(s, &configmap_yaml("cgd", "one"))?;
    check(out.contains("configmap/cgd created"), || out.clone())?;
    let got = get_json(s, "configmap", "cgd", NS)?;
    check(got["data"]["key"] == "one", || format!("{got}"))?;
    check(
        got["metadata"]["uid"].is_string() && got["metadata"]["resourceVersion"].is_string(),
        || format!("{got}"),
    )?;
    let table = kubectl_ok(s, &["get", "configmaps", "-n", NS])?;
    check(table.contains("NAME") && table.contains("cgd"), || {
        table.clone()
    })?;
    let desc = kubectl_ok(s, &["describe", "configmap", "cgd", "-n", NS])?;
    check(
        desc.contains("Name:") && desc.contains("cgd") && desc.contains("one"),
        || desc.clone(),
    )?;
    // Creating it again is refused: AlreadyExists.
    let err = kubectl_err(
        s,
        &s.admin_kubeconfig(),
        &["create", "-f", "-"],
        Some(&configmap_yaml("cgd", "one")),
    )?;
    check(
        err.contains("AlreadyExists") || err.contains("already exists"),
        || err.clone(),
    )?;
    let out = kubectl_ok(s, &["delete", "configmap", "cgd", "-n", NS])?;
    check(out.contains("deleted"), || out.clone())?;
    let err = kubectl_err(
        s,
        &s.admin_kubeconfig(),
        &["get", "configmap", "cgd", "-n", NS],
        None,
    )?;
    check(
        err.contains("NotFound") || err.contains("not found"),
        || err.clone(),
    )?;
    Ok(())
}

pub fn apply_twice_second_is_a_noop(s: &Suite) -> Result<(), Failed> {
    let doc = format!(
        "{}---\n{}",
        configmap_yaml("applied", "v1"),
        deployment_yaml("applied", 1)
    );
    let first = kubectl_in(s, &["apply", "-f", "-"], Some(&doc))?;
    check(
        first.contains("configmap/applied created")
            && first.contains("deployment.apps/applied created"),
        || first.clone(),
    )?;
    let rv = |s: &Suite| -> Result<String, Failed> {
        get_path(s, "configmap", "applied", NS, "{.metadata.resourceVersion}")
    };
    let before = rv(s)?;
    let second = kubectl_in(s, &["apply", "-f", "-"], Some(&doc))?;
    check(
        second.contains("configmap/applied unchanged")
            && second.contains("deployment.apps/applied unchanged"),
        || second.clone(),
    )?;
    check(rv(s)? == before, || {
        "the second apply wrote the object".into()
    })?;
    // A changed manifest is applied as a patch.
    let changed = kubectl_in(
        s,
        &["apply", "-f", "-"],
        Some(&configmap_yaml("applied", "v2")),
    )?;
    check(changed.contains("configmap/applied configured"), || {
        changed.clone()
    })?;
    let data = get_path(s, "configmap", "applied", NS, "{.data.key}")?;
    check(data == "v2", || data.clone())?;
    Ok(())
}

pub fn edit_via_patch(s: &Suite) -> Result<(), Failed> {
    create(s, &configmap_yaml("patched", "a"))?;
    let patch = |how: &[&str]| {
        let mut args = vec!["patch", "configmap", "patched", "-n", NS];
        args.extend_from_slice(how);
        kubectl_ok(s, &args)
    };
    patch(&["--type=merge", "-p", r#"{"data":{"key":"b","extra":"x"}}"#])?;
    patch(&[
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/data/extra"}]"#,
    ])?;
    // Strategic merge, kubectl's default.
    patch(&["-p", r#"{"metadata":{"labels":{"edited":"yes"}}}"#])?;
    let got = get_json(s, "configmap", "patched", NS)?;
    check(got["data"] == serde_json::json!({"key": "b"}), || {
        format!("{got}")
    })?;
    check(
        got["metadata"]["labels"]["edited"] == "yes" && got["metadata"]["labels"]["suite"] == "e2e",
        || format!("{got}"),
    )?;
    // A strategic merge on a list keyed by name (containers) merges, not replaces.
    create(s, &deployment_yaml("patched", 1))?;
    kubectl_ok(
        s,
        &[
            "patch",
            "deployment",
            "patched",
            "-n",
            NS,
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"main","image":"capstan.test/testsrv:v2"}]}}}}"#,
        ],
    )?;
    let d = get_json(s, "deployment", "patched", NS)?;
    let containers = &d["spec"]["template"]["spec"]["containers"];
    check(
        containers.as_array().map(|c| c.len()) == Some(1)
            && containers[0]["image"] == "capstan.test/testsrv:v2",
        || format!("{containers}"),
    )?;
    // `kubectl edit` itself, with sed as the editor: kubectl fetches the
    // object, runs the editor on it and sends the difference as a patch.
    let mut c = s.cp().kubectl()?;
    c.args([
        "--request-timeout=30s",
        "edit",
        "configmap",
        "patched",
        "-n",
        NS,
    ])
    .env("KUBE_EDITOR", "sed -i -e '/^  key:/s/b$/edited/'");
    let out = kubectl::run(c, None)?;
    check(
        out.status.success() && text(&out.stdout).contains("edited"),
        || format!("{}{}", text(&out.stdout), text(&out.stderr)),
    )?;
    let data = get_path(s, "configmap", "patched", NS, "{.data.key}")?;
    check(data == "edited", || data.clone())?;
    Ok(())
}

pub fn scale_a_deployment(s: &Suite) -> Result<(), Failed> {
    create(s, &deployment_yaml("scaled", 1))?;
    let out = kubectl_ok(
        s,
        &["scale", "deployment", "scaled", "-n", NS, "--replicas=3"],
    )?;
    check(out.contains("scaled"), || out.clone())?;
    let n = get_path(s, "deployment", "scaled", NS, "{.spec.replicas}")?;
    check(n == "3", || n.clone())?;
    // --current-replicas is a precondition: a wrong one is refused.
    let err = kubectl_err(
        s,
        &s.admin_kubeconfig(),
        &[
            "scale",
            "deployment",
            "scaled",
            "-n",
            NS,
            "--current-replicas=1",
            "--replicas=5",
        ],
        None,
    )?;
    check(!err.is_empty(), || "scale with a wrong precondition".into())?;
    Ok(())
}

pub fn stale_update_is_a_conflict(s: &Suite) -> Result<(), Failed> {
    create(s, &configmap_yaml("stale", "0"))?;
    let original = kubectl_ok(s, &["get", "configmap", "stale", "-n", NS, "-o", "json"])?;
    let mut first = json(&original)?;
    first["data"]["key"] = "1".into();
    kubectl_in(s, &["replace", "-f", "-"], Some(&first.to_string()))?;
    // The same resourceVersion again: someone else wrote in between.
    let mut second = json(&original)?;
    second["data"]["key"] = "2".into();
    let err = kubectl_err(
        s,
        &s.admin_kubeconfig(),
        &["replace", "-f", "-"],
        Some(&second.to_string()),
    )?;
    check(
        err.contains("Conflict") || err.contains("the object has been modified"),
        || err.clone(),
    )?;
    let (code, body) = curl(
        s,
        Some("admin"),
        "PUT",
        &format!("/api/v1/namespaces/{NS}/configmaps/stale"),
        Some(("application/json", &second.to_string())),
    )?;
    check(code == 409, || format!("{code} {body}"))?;
    check(json(&body)?["reason"] == "Conflict", || body.clone())?;
    let data = get_path(s, "configmap", "stale", NS, "{.data.key}")?;
    check(data == "1", || data.clone())?;
    Ok(())
}
