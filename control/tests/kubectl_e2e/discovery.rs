//! What clients discover before they act: api-resources, version,
//! `explain`, and the OpenAPI v2 document in protobuf.

use capstan_lab::kubectl;
use libtest_mimic::Failed;

use crate::support::*;

pub fn api_resources_and_version(s: &Suite) -> Result<(), Failed> {
    let out = kubectl_ok(s, &["api-resources", "-o", "name"])?;
    for r in [
        "pods",
        "services",
        "nodes",
        "namespaces",
        "configmaps",
        "deployments.apps",
        "leases.coordination.k8s.io",
    ] {
        check(out.lines().any(|l| l == r), || {
            format!("api-resources lacks {r}:\n{out}")
        })?;
    }
    let out = kubectl_ok(s, &["version", "-o", "json"])?;
    let v = json(&out)?;
    check(v["serverVersion"]["gitVersion"].is_string(), || out.clone())?;
    Ok(())
}

pub fn explain(s: &Suite) -> Result<(), Failed> {
    let out = kubectl_ok(s, &["explain", "pod.spec.containers"])?;
    check(
        out.contains("KIND:") && out.contains("Pod") && out.contains("image"),
        || out.clone(),
    )
}

/// `/openapi/v2` in the protobuf form client-go before 1.27 asks for.
pub fn openapi_v2_protobuf(s: &Suite) -> Result<(), Failed> {
    let (mut c, pki, server) = {
        let cp = s.cp();
        (cp.command("curl")?, cp.pki_dir().to_path_buf(), cp.server())
    };
    let out_file = s.lab().dir().join("openapi-v2.pb");
    c.args([
        "-s",
        "--max-time",
        "20",
        "-w",
        "%{http_code} %{content_type}",
        "-o",
    ])
    .arg(&out_file)
    .args([
        "-H",
        "Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
        "--cacert",
    ])
    .arg(pki.join("ca.crt"))
    .arg("--cert")
    .arg(pki.join("admin.crt"))
    .arg("--key")
    .arg(pki.join("admin.key"))
    .arg(format!("{server}/openapi/v2"));
    let out = kubectl::run(c, None)?;
    let status = text(&out.stdout);
    check(
        status == "200 application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
        || format!("status and type: {status:?} {}", text(&out.stderr)),
    )?;
    let body = std::fs::read(&out_file).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&out_file);
    let doc = capstan_apiserver::protobuf::openapi_v2::decode(&body).map_err(|e| e.to_string())?;
    check(
        doc.get_field_by_name("swagger")
            .is_some_and(|v| v.as_str() == Some("2.0")),
        || "swagger is not 2.0".into(),
    )?;
    // The definitions and the GVK extension kubectl's readers look for.
    let raw = String::from_utf8_lossy(&body);
    check(
        raw.contains("io.k8s.api.apps.v1.Deployment")
            && raw.contains("x-kubernetes-group-version-kind"),
        || "no Deployment definition with its GVK".into(),
    )?;
    Ok(())
}
