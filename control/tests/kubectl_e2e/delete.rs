//! What a DELETE answers: 200 with the object a finalizer holds, 202 only
//! when cascading was asked (a protobuf DeleteOptions), 200 with a Status
//! when the object went at once.

use libtest_mimic::Failed;

use crate::clients::*;
use crate::manifests::*;
use crate::support::*;

/// A DELETE whose object stays (a finalizer holds it) answers 200 with
/// the object, as Kubernetes does; 202 only for `orphanDependents: false`,
/// here sent as a protobuf DeleteOptions body like client-go's typed
/// clients send it.
pub fn delete_answers_200_unless_cascading_was_asked(s: &Suite) -> Result<(), Failed> {
    let name = "held-by-finalizer";
    let item = format!("/api/v1/namespaces/{NS}/configmaps/{name}");
    let held = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {NS}\n  finalizers: [capstan.test/hold]\n"
    );
    create(s, &held)?;
    let delete = |content_type: &str, body: &str| {
        curl(
            s,
            Some("admin"),
            "DELETE",
            &item,
            Some((content_type, body)),
        )
    };
    let result = (|| -> Result<(), Failed> {
        let (code, body) = delete(
            "application/json",
            r#"{"kind":"DeleteOptions","apiVersion":"v1"}"#,
        )?;
        check(code == 200, || format!("finalized delete: {code} {body}"))?;
        let held = json(&body)?;
        check(
            held["kind"] == "ConfigMap" && held["metadata"]["deletionTimestamp"].is_string(),
            || format!("the answer is not the marked object: {held}"),
        )?;
        // typeMeta {apiVersion: "v1", kind: "DeleteOptions"}, raw: the
        // DeleteOptions message {orphanDependents (field 3): false}.
        let proto = "k8s\u{0}\n\u{13}\n\u{2}v1\u{12}\u{d}DeleteOptions\u{12}\u{2}\u{18}\u{0}";
        let (code, body) = delete("application/vnd.kubernetes.protobuf", proto)?;
        check(code == 202, || {
            format!("orphanDependents=false (protobuf body): {code} {body}")
        })?;
        // A body that is not DeleteOptions is refused.
        let (code, body) = delete(
            "application/json",
            r#"{"kind":"ConfigMap","apiVersion":"v1"}"#,
        )?;
        check(code == 400, || {
            format!("ConfigMap as DeleteOptions: {code} {body}")
        })?;
        Ok(())
    })();
    kubectl_ok(
        s,
        &[
            "patch",
            "configmap",
            name,
            "-n",
            NS,
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ],
    )?;
    result?;
    let (code, body) = curl(s, Some("admin"), "GET", &item, None)?;
    check(code == 404, || format!("gone once unheld: {code} {body}"))?;
    // Deleted at once: 200 with a Success Status.
    create(s, &configmap_yaml("deleted-at-once", "x"))?;
    let (code, body) = curl(
        s,
        Some("admin"),
        "DELETE",
        &format!("/api/v1/namespaces/{NS}/configmaps/deleted-at-once"),
        None,
    )?;
    check(code == 200, || format!("immediate delete: {code} {body}"))?;
    Ok(())
}
