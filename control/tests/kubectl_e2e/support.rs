//! The suite's helpers: kubectl as the admin or anyone (through the lab's
//! one runner), curl and kube-rs from the underlay, and the short checks
//! every test uses. No test logic here.

use std::path::{Path, PathBuf};
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

/// One HTTPS request with curl from the underlay namespace: (code, body).
/// `auth`: "admin" / a node's file stem for its client certificate, or
/// None for no credentials.
pub fn curl(
    s: &Suite,
    auth: Option<&str>,
    method: &str,
    path: &str,
    body: Option<(&str, &str)>,
) -> Result<(u16, String), Failed> {
    let (mut c, pki, server) = {
        let cp = s.cp();
        (cp.command("curl")?, cp.pki_dir().to_path_buf(), cp.server())
    };
    // HTTP/1.1: curl 7.88 drops an early answer (413 before the whole
    // body is sent) on HTTP/2; kubectl covers HTTP/2.
    c.args([
        "--http1.1",
        "-s",
        "--max-time",
        "10",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "-X",
        method,
        "--cacert",
    ])
    .arg(pki.join("ca.crt"));
    if let Some(who) = auth {
        c.arg("--cert")
            .arg(pki.join(format!("{who}.crt")))
            .arg("--key")
            .arg(pki.join(format!("{who}.key")));
    }
    let stdin = body.map(|(content_type, data)| {
        c.args([
            "-H",
            &format!("Content-Type: {content_type}"),
            "--data-binary",
            "@-",
        ]);
        data.to_string()
    });
    c.arg(format!("{server}{path}"));
    let out = capstan_lab::kubectl::run(c, stdin.as_deref())?;
    let all = text(&out.stdout);
    let (body, code) = all
        .rsplit_once('\n')
        .ok_or_else(|| format!("no status from curl: {all}"))?;
    let code = code
        .trim()
        .parse()
        .map_err(|_| format!("bad status {code:?}; stderr {}", text(&out.stderr)))?;
    Ok((code, body.to_string()))
}

/// Runs `f` with a kube-rs client (from `kubeconfig`) on a thread inside
/// the underlay namespace, where the server's address is reachable.
pub fn with_kube<T: Send + 'static>(
    s: &Suite,
    kubeconfig: PathBuf,
    f: impl FnOnce(
            kube::Client,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, Failed>> + Send>>
        + Send
        + 'static,
) -> Result<T, Failed> {
    s.lab()
        .underlay()
        .run_in(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("runtime: {e}"))?;
            rt.block_on(async move {
                let kc = kube::config::Kubeconfig::read_from(&kubeconfig)
                    .map_err(|e| format!("kubeconfig: {e}"))?;
                let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
                    .await
                    .map_err(|e| format!("kube config: {e}"))?;
                let client =
                    kube::Client::try_from(config).map_err(|e| format!("kube client: {e}"))?;
                f(client).await
            })
        })
        .map_err(|e| Failed::from(e.to_string()))?
}

pub fn api_code<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> Result<u16, Failed> {
    match r {
        Ok(_) => Ok(200),
        Err(kube::Error::Api(s)) => Ok(s.code),
        Err(e) => Err(format!("transport error: {e}").into()),
    }
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
