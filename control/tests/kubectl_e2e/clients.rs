//! Clients other than kubectl, from the underlay namespace where the
//! server listens: curl for raw HTTPS (exact codes and bodies) and kube-rs.
//! No test logic here.

use std::path::PathBuf;

use libtest_mimic::Failed;

use crate::support::{text, Suite};

/// One HTTPS request with curl from the underlay namespace: (code, body).
/// `auth`: "admin" / a node's file stem for its client certificate,
/// "token:<token>" for a bearer token, or None for no credentials.
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
    match auth {
        // A bearer token instead of a client certificate.
        Some(who) if who.starts_with("token:") => {
            c.args(["-H", &format!("Authorization: Bearer {}", &who[6..])]);
        }
        Some(who) => {
            c.arg("--cert")
                .arg(pki.join(format!("{who}.crt")))
                .arg("--key")
                .arg(pki.join(format!("{who}.key")));
        }
        None => {}
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
