//! The suite's helpers: kubectl as the admin or anyone (through the lab's
//! one runner) and the short checks every test uses. No test logic here.

use std::path::Path;
use std::process::Output;

use libtest_mimic::Failed;

pub use capstan_lab::suite::ControlSuite as Suite;

use crate::manifests::node_yaml;

/// kubectl with `kubeconfig`, whatever its outcome.
pub fn kubectl_as(
    s: &Suite,
    kubeconfig: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<Output, Failed> {
    Ok(s.kubectl_output(None, kubeconfig, args, stdin)?)
}

/// kubectl as the admin, whatever its outcome.
pub fn kubectl(s: &Suite, args: &[&str], stdin: Option<&str>) -> Result<Output, Failed> {
    kubectl_as(s, &s.admin_kubeconfig(), args, stdin)
}

/// kubectl as the admin; its stdout, or a failure carrying stderr.
pub fn kubectl_ok(s: &Suite, args: &[&str]) -> Result<String, Failed> {
    kubectl_in(s, args, None)
}

/// As `kubectl_ok`, with `stdin` piped in.
pub fn kubectl_in(s: &Suite, args: &[&str], stdin: Option<&str>) -> Result<String, Failed> {
    Ok(s.kubectl(args, stdin)?)
}

/// kubectl that must fail; its stderr.
pub fn kubectl_err(
    s: &Suite,
    kubeconfig: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String, Failed> {
    Ok(s.kubectl_err(kubeconfig, args, stdin)?)
}

/// `kubectl create -f -` of `manifest` as the admin.
pub fn create(s: &Suite, manifest: &str) -> Result<String, Failed> {
    kubectl_in(s, &["create", "-f", "-"], Some(manifest))
}

/// One object as JSON.
pub fn get_json(s: &Suite, kind: &str, name: &str, ns: &str) -> Result<serde_json::Value, Failed> {
    json(&kubectl_ok(
        s,
        &["get", kind, name, "-n", ns, "-o", "json"],
    )?)
}

/// `kubectl get -o jsonpath=<path>` of one object.
pub fn get_path(s: &Suite, kind: &str, name: &str, ns: &str, path: &str) -> Result<String, Failed> {
    let output = format!("jsonpath={path}");
    kubectl_ok(s, &["get", kind, name, "-n", ns, "-o", &output])
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn check(cond: bool, what: impl FnOnce() -> String) -> Result<(), Failed> {
    if cond {
        Ok(())
    } else {
        Err(what().into())
    }
}

pub fn json(s: &str) -> Result<serde_json::Value, Failed> {
    serde_json::from_str(s).map_err(|e| format!("not JSON ({e}): {s}").into())
}

/// The admin registers nodes (see `nodes_register_themselves` for the
/// node's own create), then each node's credentials are held to its own.
pub fn ensure_nodes(s: &Suite) -> Result<(), Failed> {
    for n in ["node-1", "node-2"] {
        let out = kubectl(s, &["create", "-f", "-"], Some(&node_yaml(n)))?;
        let err = text(&out.stderr);
        check(
            out.status.success() || err.contains("AlreadyExists"),
            || err.clone(),
        )?;
    }
    Ok(())
}

pub fn base64_decode(s: &str) -> Result<Vec<u8>, Failed> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| format!("base64 {s:?}: {e}").into())
}
