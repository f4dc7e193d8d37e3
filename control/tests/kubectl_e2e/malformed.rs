//! Bad input answers with a Status: malformed JSON, YAML and protobuf,
//! unknown resources, duplicates, too large and invalid objects.

use libtest_mimic::Failed;

use crate::clients::*;
use crate::manifests::*;
use crate::support::*;

pub fn malformed_inputs(s: &Suite) -> Result<(), Failed> {
    // Over HTTP/2 (kubectl): the early 413 arrives.
    let huge_yaml = configmap_yaml("huge-h2", &"x".repeat(4 * 1024 * 1024));
    let err = kubectl_err(
        s,
        &s.admin_kubeconfig(),
        &["create", "-f", "-"],
        Some(&huge_yaml),
    )?;
    check(err.contains("RequestEntityTooLarge"), || {
        err.chars().take(300).collect()
    })?;
    let cms = format!("/api/v1/namespaces/{NS}/configmaps");
    let admin = Some("admin");
    let expect = |what: &str, got: (u16, String), code: u16, reason: &str| -> Result<(), Failed> {
        check(got.0 == code, || {
            format!("{what}: want {code}, got {} {}", got.0, got.1)
        })?;
        let st = json(&got.1)?;
        check(st["kind"] == "Status" && st["reason"] == reason, || {
            format!("{what}: {st}")
        })
    };
    expect(
        "bad JSON",
        curl(
            s,
            admin,
            "POST",
            &cms,
            Some(("application/json", "{not json")),
        )?,
        400,
        "BadRequest",
    )?;
    expect(
        "unknown resource",
        curl(
            s,
            admin,
            "GET",
            &format!("/api/v1/namespaces/{NS}/widgets"),
            None,
        )?,
        404,
        "NotFound",
    )?;
    expect(
        "missing object",
        curl(s, admin, "GET", &format!("{cms}/nope"), None)?,
        404,
        "NotFound",
    )?;
    let cm = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup"}}"#;
    curl(s, admin, "POST", &cms, Some(("application/json", cm)))?;
    expect(
        "duplicate",
        curl(s, admin, "POST", &cms, Some(("application/json", cm)))?,
        409,
        "AlreadyExists",
    )?;
    let huge = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"huge"}},"data":{{"k":"{}"}}}}"#,
        "x".repeat(4 * 1024 * 1024)
    );
    expect(
        "too large",
        curl(s, admin, "POST", &cms, Some(("application/json", &huge)))?,
        413,
        "RequestEntityTooLarge",
    )?;
    expect(
        "unsupported media type",
        curl(s, admin, "POST", &cms, Some(("text/plain", cm)))?,
        415,
        "UnsupportedMediaType",
    )?;
    let bad_name = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Not_Valid"}}"#;
    expect(
        "invalid name",
        curl(s, admin, "POST", &cms, Some(("application/json", bad_name)))?,
        422,
        "Invalid",
    )?;
    let no_containers =
        r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"empty"},"spec":{"containers":[]}}"#;
    expect(
        "pod without containers",
        curl(
            s,
            admin,
            "POST",
            &format!("/api/v1/namespaces/{NS}/pods"),
            Some(("application/json", no_containers)),
        )?,
        422,
        "Invalid",
    )?;
    let bad_patch = curl(
        s,
        admin,
        "PATCH",
        &format!("{cms}/dup"),
        Some(("application/json-patch+json", r#"[{"op":"explode"}]"#)),
    )?;
    check(bad_patch.0 == 400 || bad_patch.0 == 422, || {
        format!("bad json patch: {bad_patch:?}")
    })?;
    // And through kubectl: a manifest that is not YAML, and one without a name.
    let err = kubectl_err(
        s,
        &s.admin_kubeconfig(),
        &["create", "-f", "-"],
        Some("kind: [unclosed"),
    )?;
    check(!err.is_empty(), || "bad YAML".into())?;
    let err = kubectl_err(
        s,
        &s.admin_kubeconfig(),
        &["create", "-f", "-"],
        Some(&configmap_yaml("x", "y").replace("  name: x\n", "")),
    )?;
    check(err.contains("name"), || err.clone())?;
    Ok(())
}

pub fn malformed_protobuf_is_400(s: &Suite) -> Result<(), Failed> {
    let cms = format!("/api/v1/namespaces/{NS}/configmaps");
    let bodies = [
        ("no magic", "not protobuf at all"),
        // Field 1 (typeMeta) claims 5 bytes, 2 follow.
        ("truncated envelope", "k8s\u{0}\u{a}\u{5}ab"),
        // typeMeta {apiVersion: "v1", kind: "Widget"}.
        (
            "unknown kind",
            "k8s\u{0}\u{a}\u{c}\u{a}\u{2}v1\u{12}\u{6}Widget",
        ),
        // A ConfigMap whose raw bytes are a truncated field.
        (
            "truncated object",
            "k8s\u{0}\u{a}\u{f}\u{a}\u{2}v1\u{12}\u{9}ConfigMap\u{12}\u{2}\u{a}\u{7f}",
        ),
    ];
    for (what, body) in bodies {
        let (code, answer) = curl(
            s,
            Some("admin"),
            "POST",
            &cms,
            Some(("application/vnd.kubernetes.protobuf", body)),
        )?;
        check(code == 400, || {
            format!("{what}: want 400, got {code} {answer}")
        })?;
        let st = json(&answer)?;
        check(
            st["kind"] == "Status" && st["reason"] == "BadRequest",
            || format!("{what}: {st}"),
        )?;
    }
    // The server is still there.
    kubectl_ok(s, &["get", "configmaps", "-n", NS])?;
    Ok(())
}
