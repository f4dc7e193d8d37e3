//! capstan-control end to end, driven by the real kubectl (and kube-rs):
//! one lab (2 nodes for their credentials, real etcd, no containerd) with
//! capstan-control in the underlay namespace, shared by every test of the
//! suite (harness = false). Tests run one at a time: some restart the
//! server, and each uses object names of its own.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use capstan_lab::control::ControlPlane;
use capstan_lab::{privileged, Lab};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use libtest_mimic::{Arguments, Failed, Trial};

const NS: &str = "e2e";

/// Debian's kubectl 1.20 (kubernetes-client), unpacked beside the PATH one
/// by deploy/local/install-deps.sh: the oldest client supported, which
/// reads OpenAPI v2 as protobuf and knows no aggregated discovery.
const KUBECTL_1_20: &str = "/opt/capstan/kubectl-1.20/usr/bin/kubectl";

/// Fields drop in order: the server stops before the lab is torn down.
struct Suite {
    cp: Mutex<ControlPlane>,
    lab: Lab,
}

type TestFn = fn(&Suite) -> Result<(), Failed>;

fn main() {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    if !privileged::require(
        "kubectl_e2e",
        &["ip", "etcd", "kubectl", "curl", KUBECTL_1_20],
    ) {
        return;
    }
    let lab = Lab::builder()
        .nodes(2)
        .etcd(true)
        .containerd(false)
        .build()
        .expect("build lab");
    // The API and its edge alone: no scheduler binding the test's pods, no
    // controllers making pods for its Deployments.
    let quiet = [
        "--controllers=".to_string(),
        "--scheduler=false".to_string(),
    ];
    let cp = ControlPlane::start_with(&lab, &lab.etcd_endpoint(), &quiet)
        .unwrap_or_else(|e| panic!("start capstan-control: {e}"));
    let suite = Suite {
        cp: Mutex::new(cp),
        lab,
    };
    kubectl_in(
        &suite,
        &["create", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NS}\n"
        )),
    )
    .expect("create test namespace");
    let tests: &[(&str, TestFn)] = &[
        (
            "health_is_public_and_api_needs_credentials",
            health_is_public_and_api_needs_credentials,
        ),
        ("api_resources_and_version", api_resources_and_version),
        ("explain", explain),
        ("create_get_describe_delete", create_get_describe_delete),
        ("apply_twice_second_is_a_noop", apply_twice_second_is_a_noop),
        ("edit_via_patch", edit_via_patch),
        ("scale_a_deployment", scale_a_deployment),
        ("label_and_field_selectors", label_and_field_selectors),
        ("get_watch_receives_an_event", get_watch_receives_an_event),
        ("stale_update_is_a_conflict", stale_update_is_a_conflict),
        (
            "nodes_write_only_their_own_objects",
            nodes_write_only_their_own_objects,
        ),
        ("nodes_register_themselves", nodes_register_themselves),
        (
            "kube_rs_client_with_node_credentials",
            kube_rs_client_with_node_credentials,
        ),
        (
            "nodes_read_only_secrets_their_pods_use",
            nodes_read_only_secrets_their_pods_use,
        ),
        ("malformed_inputs", malformed_inputs),
        ("auth_can_i_and_whoami", auth_can_i_and_whoami),
        ("kubectl_1_20_auth_can_i", kubectl_1_20_auth_can_i),
        (
            "protobuf_generators_match_create_f",
            protobuf_generators_match_create_f,
        ),
        ("malformed_protobuf_is_400", malformed_protobuf_is_400),
        (
            "delete_answers_200_unless_cascading_was_asked",
            delete_answers_200_unless_cascading_was_asked,
        ),
        ("openapi_v2_protobuf", openapi_v2_protobuf),
        (
            "kubectl_1_20_validates_explains_gets_deletes",
            kubectl_1_20_validates_explains_gets_deletes,
        ),
        ("kubectl_1_20_apply_twice", kubectl_1_20_apply_twice),
        ("kubectl_1_20_generators", kubectl_1_20_generators),
        ("metrics_count_requests", metrics_count_requests),
        ("objects_survive_a_restart", objects_survive_a_restart),
        (
            "watch_resumes_after_a_restart",
            watch_resumes_after_a_restart,
        ),
    ];
    let suite = std::sync::Arc::new(suite);
    let trials = tests
        .iter()
        .map(|&(name, f)| {
            let s = suite.clone();
            Trial::test(name, move || f(&s))
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    if conclusion.has_failed() {
        let log = suite.cp.lock().unwrap_or_else(|e| e.into_inner()).log();
        eprintln!(
            "capstan-control log (last lines):\n{}",
            capstan_lab::daemon::log_tail(&log, 40)
        );
    }
    drop(suite);
    conclusion.exit();
}

// ---------------------------------------------------------------- helpers

fn cp(s: &Suite) -> std::sync::MutexGuard<'_, ControlPlane> {
    s.cp.lock().unwrap_or_else(|e| e.into_inner())
}

/// The admin's kubeconfig, without holding the lock past this call (a
/// guard living to the end of a statement that calls kubectl deadlocks).
fn admin_kc(s: &Suite) -> PathBuf {
    cp(s).admin_kubeconfig()
}

fn run(mut c: Command, stdin: Option<&str>) -> Result<Output, Failed> {
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| format!("spawn {c:?}: {e}"))?;
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().ok_or("no stdin pipe")?;
        pipe.write_all(text.as_bytes())
            .map_err(|e| format!("write stdin: {e}"))?;
    }
    Ok(child
        .wait_with_output()
        .map_err(|e| format!("wait for {c:?}: {e}"))?)
}

fn kubectl_as(
    s: &Suite,
    kubeconfig: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<Output, Failed> {
    let mut c = cp(s).kubectl_with(kubeconfig)?;
    // A server that stops answering fails the test instead of hanging it.
    c.arg("--request-timeout=30s").args(args);
    run(c, stdin)
}

fn kubectl(s: &Suite, args: &[&str], stdin: Option<&str>) -> Result<Output, Failed> {
    let admin = cp(s).admin_kubeconfig();
    kubectl_as(s, &admin, args, stdin)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// kubectl as the admin; its stdout, or a failure carrying stderr.
fn kubectl_ok(s: &Suite, args: &[&str]) -> Result<String, Failed> {
    kubectl_in(s, args, None)
}

fn kubectl_in(s: &Suite, args: &[&str], stdin: Option<&str>) -> Result<String, Failed> {
    let out = kubectl(s, args, stdin)?;
    if !out.status.success() {
        return Err(format!("kubectl {args:?} failed: {}", text(&out.stderr)).into());
    }
    Ok(text(&out.stdout))
}

/// kubectl that must fail; its stderr.
fn kubectl_err(
    s: &Suite,
    kubeconfig: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String, Failed> {
    let out = kubectl_as(s, kubeconfig, args, stdin)?;
    if out.status.success() {
        return Err(format!(
            "kubectl {args:?} succeeded but should not: {}",
            text(&out.stdout)
        )
        .into());
    }
    Ok(text(&out.stderr))
}

fn check(cond: bool, what: impl FnOnce() -> String) -> Result<(), Failed> {
    if cond {
        Ok(())
    } else {
        Err(what().into())
    }
}

fn json(s: &str) -> Result<serde_json::Value, Failed> {
    serde_json::from_str(s).map_err(|e| format!("not JSON ({e}): {s}").into())
}

/// One HTTPS request with curl from the underlay namespace: (code, body).
/// `auth`: "admin" / a node's file stem for its client certificate, or
/// None for no credentials.
fn curl(
    s: &Suite,
    auth: Option<&str>,
    method: &str,
    path: &str,
    body: Option<(&str, &str)>,
) -> Result<(u16, String), Failed> {
    let (mut c, pki, server) = {
        let cp = cp(s);
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
    let out = run(c, stdin.as_deref())?;
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
fn with_kube<T: Send + 'static>(
    s: &Suite,
    kubeconfig: PathBuf,
    f: impl FnOnce(
            kube::Client,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, Failed>> + Send>>
        + Send
        + 'static,
) -> Result<T, Failed> {
    s.lab
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

fn api_code<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> Result<u16, Failed> {
    match r {
        Ok(_) => Ok(200),
        Err(kube::Error::Api(s)) => Ok(s.code),
        Err(e) => Err(format!("transport error: {e}").into()),
    }
}

fn configmap_yaml(name: &str, data: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {NS}\n  labels:\n    suite: e2e\ndata:\n  key: \"{data}\"\n"
    )
}

fn deployment_yaml(name: &str, replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {NS}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: main
        image: capstan.test/testsrv:latest
"#
    )
}

fn pod_yaml(name: &str, node: Option<&str>, labels: &str) -> String {
    let node = node
        .map(|n| format!("  nodeName: {n}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {NS}\n  labels:\n{labels}spec:\n{node}  containers:\n  - name: main\n    image: capstan.test/testsrv:latest\n"
    )
}

fn node_yaml(name: &str) -> String {
    format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  labels:\n    suite: e2e\n")
}

// ------------------------------------------------------------------ tests

fn health_is_public_and_api_needs_credentials(s: &Suite) -> Result<(), Failed> {
    for path in ["/healthz", "/livez", "/readyz"] {
        let (code, body) = curl(s, None, "GET", path, None)?;
        check(code == 200 && body == "ok", || {
            format!("{path}: {code} {body}")
        })?;
    }
    let (code, body) = curl(s, None, "GET", "/api/v1/namespaces/default/pods", None)?;
    check(code == 401, || format!("anonymous list: {code} {body}"))?;
    let status = json(&body)?;
    check(
        status["kind"] == "Status" && status["reason"] == "Unauthorized",
        || format!("{status}"),
    )?;
    // kubectl with a kubeconfig that holds only the CA and a wrong token
    // (with no credentials at all kubectl would prompt for a password).
    let bad = s.lab.dir().join("bad-token.kubeconfig");
    let admin = std::fs::read_to_string(admin_kc(s)).map_err(|e| e.to_string())?;
    let mut kc: serde_yaml::Value = serde_yaml::from_str(&admin).map_err(|e| e.to_string())?;
    let mut user = serde_yaml::Mapping::new();
    user.insert("token".into(), "not-a-token".into());
    kc["users"][0]["user"] = serde_yaml::Value::Mapping(user);
    std::fs::write(&bad, serde_yaml::to_string(&kc).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let err = kubectl_err(s, &bad, &["get", "pods", "-n", NS], None)?;
    check(err.contains("Unauthorized"), || err.clone())?;
    // The node's token from the token file works like its certificate.
    ensure_nodes(s)?;
    let tokens =
        std::fs::read_to_string(cp(s).pki_dir().join("tokens.csv")).map_err(|e| e.to_string())?;
    let token = tokens
        .lines()
        .find(|l| l.contains(",system:node:node-1,"))
        .and_then(|l| l.split(',').next())
        .ok_or("no token for node-1")?;
    kc["users"][0]["user"]["token"] = token.into();
    std::fs::write(&bad, serde_yaml::to_string(&kc).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let err = kubectl_err(s, &bad, &["label", "node", "node-2", "by-token=yes"], None)?;
    check(
        err.contains("system:node:node-1") && err.contains("orbidden"),
        || err.clone(),
    )?;
    let out = kubectl_as(s, &bad, &["get", "nodes"], None)?;
    check(out.status.success(), || {
        format!("node token: {}", text(&out.stderr))
    })?;
    Ok(())
}

fn api_resources_and_version(s: &Suite) -> Result<(), Failed> {
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

fn explain(s: &Suite) -> Result<(), Failed> {
    let out = kubectl_ok(s, &["explain", "pod.spec.containers"])?;
    check(
        out.contains("KIND:") && out.contains("Pod") && out.contains("image"),
        || out.clone(),
    )
}

fn create_get_describe_delete(s: &Suite) -> Result<(), Failed> {
    let out = kubectl_in(
        s,
        &["create", "-f", "-"],
        Some(&configmap_yaml("cgd", "one")),
    )?;
    check(out.contains("configmap/cgd created"), || out.clone())?;
    let got = json(&kubectl_ok(
        s,
        &["get", "configmap", "cgd", "-n", NS, "-o", "json"],
    )?)?;
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
        &admin_kc(s),
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
        &admin_kc(s),
        &["get", "configmap", "cgd", "-n", NS],
        None,
    )?;
    check(
        err.contains("NotFound") || err.contains("not found"),
        || err.clone(),
    )?;
    Ok(())
}

fn apply_twice_second_is_a_noop(s: &Suite) -> Result<(), Failed> {
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
        kubectl_ok(
            s,
            &[
                "get",
                "configmap",
                "applied",
                "-n",
                NS,
                "-o",
                "jsonpath={.metadata.resourceVersion}",
            ],
        )
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
    let data = kubectl_ok(
        s,
        &[
            "get",
            "configmap",
            "applied",
            "-n",
            NS,
            "-o",
            "jsonpath={.data.key}",
        ],
    )?;
    check(data == "v2", || data.clone())?;
    Ok(())
}

fn edit_via_patch(s: &Suite) -> Result<(), Failed> {
    kubectl_in(
        s,
        &["create", "-f", "-"],
        Some(&configmap_yaml("patched", "a")),
    )?;
    kubectl_ok(
        s,
        &[
            "patch",
            "configmap",
            "patched",
            "-n",
            NS,
            "--type=merge",
            "-p",
            r#"{"data":{"key":"b","extra":"x"}}"#,
        ],
    )?;
    kubectl_ok(
        s,
        &[
            "patch",
            "configmap",
            "patched",
            "-n",
            NS,
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/data/extra"}]"#,
        ],
    )?;
    kubectl_ok(
        s,
        &[
            "patch",
            "configmap",
            "patched",
            "-n",
            NS,
            "-p",
            r#"{"metadata":{"labels":{"edited":"yes"}}}"#,
        ],
    )?;
    let got = json(&kubectl_ok(
        s,
        &["get", "configmap", "patched", "-n", NS, "-o", "json"],
    )?)?;
    check(got["data"] == serde_json::json!({"key": "b"}), || {
        format!("{got}")
    })?;
    check(
        got["metadata"]["labels"]["edited"] == "yes" && got["metadata"]["labels"]["suite"] == "e2e",
        || format!("{got}"),
    )?;
    // A strategic merge on a list keyed by name (containers) merges, not replaces.
    kubectl_in(
        s,
        &["create", "-f", "-"],
        Some(&deployment_yaml("patched", 1)),
    )?;
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
    let d = json(&kubectl_ok(
        s,
        &["get", "deployment", "patched", "-n", NS, "-o", "json"],
    )?)?;
    let containers = &d["spec"]["template"]["spec"]["containers"];
    check(
        containers.as_array().map(|c| c.len()) == Some(1)
            && containers[0]["image"] == "capstan.test/testsrv:v2",
        || format!("{containers}"),
    )?;
    // `kubectl edit` itself, with sed as the editor: kubectl fetches the
    // object, runs the editor on it and sends the difference as a patch.
    let mut c = cp(s).kubectl()?;
    c.args([
        "--request-timeout=30s",
        "edit",
        "configmap",
        "patched",
        "-n",
        NS,
    ])
    .env("KUBE_EDITOR", "sed -i -e '/^  key:/s/b$/edited/'");
    let out = run(c, None)?;
    check(
        out.status.success() && text(&out.stdout).contains("edited"),
        || format!("{}{}", text(&out.stdout), text(&out.stderr)),
    )?;
    let data = kubectl_ok(
        s,
        &[
            "get",
            "configmap",
            "patched",
            "-n",
            NS,
            "-o",
            "jsonpath={.data.key}",
        ],
    )?;
    check(data == "edited", || data.clone())?;
    Ok(())
}

fn scale_a_deployment(s: &Suite) -> Result<(), Failed> {
    kubectl_in(
        s,
        &["create", "-f", "-"],
        Some(&deployment_yaml("scaled", 1)),
    )?;
    let out = kubectl_ok(
        s,
        &["scale", "deployment", "scaled", "-n", NS, "--replicas=3"],
    )?;
    check(out.contains("scaled"), || out.clone())?;
    let n = kubectl_ok(
        s,
        &[
            "get",
            "deployment",
            "scaled",
            "-n",
            NS,
            "-o",
            "jsonpath={.spec.replicas}",
        ],
    )?;
    check(n == "3", || n.clone())?;
    // --current-replicas is a precondition: a wrong one is refused.
    let err = kubectl_err(
        s,
        &admin_kc(s),
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

fn label_and_field_selectors(s: &Suite) -> Result<(), Failed> {
    let docs = [
        pod_yaml("sel-a", Some("node-1"), "    app: web\n    tier: front\n"),
        pod_yaml("sel-b", Some("node-2"), "    app: web\n    tier: back\n"),
        pod_yaml("sel-c", None, "    app: db\n"),
    ]
    .join("---\n");
    kubectl_in(s, &["create", "-f", "-"], Some(&docs))?;
    let names = |args: &[&str]| -> Result<Vec<String>, Failed> {
        let mut all = vec!["get", "pods", "-n", NS, "-o", "name"];
        all.extend_from_slice(args);
        // Other tests' controllers run pods in this namespace too.
        let mut v: Vec<String> = kubectl_ok(s, &all)?
            .lines()
            .filter(|l| l.starts_with("pod/sel-"))
            .map(String::from)
            .collect();
        v.sort();
        Ok(v)
    };
    check(
        names(&["-l", "app=web"])? == ["pod/sel-a", "pod/sel-b"],
        || "app=web".into(),
    )?;
    check(
        names(&["-l", "app=web,tier!=front"])? == ["pod/sel-b"],
        || "tier!=front".into(),
    )?;
    check(names(&["-l", "app in (db)"])? == ["pod/sel-c"], || {
        "set-based".into()
    })?;
    check(names(&["-l", "!tier,app"])? == ["pod/sel-c"], || {
        "existence".into()
    })?;
    check(
        names(&["--field-selector", "spec.nodeName=node-1"])? == ["pod/sel-a"],
        || "nodeName".into(),
    )?;
    check(
        names(&["--field-selector", "metadata.name=sel-b"])? == ["pod/sel-b"],
        || "metadata.name".into(),
    )?;
    check(
        names(&["--field-selector", "spec.nodeName=", "-l", "app"])? == ["pod/sel-c"],
        || "unscheduled".into(),
    )?;
    // Across namespaces, with both kinds of selector.
    let all = kubectl_ok(
        s,
        &[
            "get",
            "pods",
            "-A",
            "-l",
            "app=web",
            "--field-selector",
            "spec.nodeName!=node-1",
            "-o",
            "name",
        ],
    )?;
    check(all.trim() == "pod/sel-b", || all.clone())?;
    let err = kubectl_err(
        s,
        &admin_kc(s),
        &[
            "get",
            "pods",
            "-n",
            NS,
            "--field-selector",
            "spec.noSuchField=x",
        ],
        None,
    )?;
    check(
        err.contains("field label not supported")
            || err.contains("BadRequest")
            || err.contains("not supported"),
        || err.clone(),
    )?;
    Ok(())
}

fn get_watch_receives_an_event(s: &Suite) -> Result<(), Failed> {
    let mut c = cp(s).kubectl()?;
    c.args([
        "get",
        "configmaps",
        "-n",
        NS,
        "-w",
        "--output-watch-events",
        "-l",
        "watched=yes",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| format!("spawn kubectl -w: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Lines after the table's header (EVENT NAME AGE).
    let next_event = |timeout: Duration| loop {
        match rx.recv_timeout(timeout) {
            Ok(line) if line.starts_with("EVENT") => continue,
            Ok(line) => return Some(line),
            Err(_) => return None,
        }
    };
    let result = (|| -> Result<(), Failed> {
        // The watch is open once the (empty) initial list is done; creating
        // until an event shows covers the race with its start.
        let deadline = Instant::now() + Duration::from_secs(20);
        let first = (0..).find_map(|i| {
            let doc = configmap_yaml(&format!("watched-{i}"), "w")
                .replace("suite: e2e", "suite: e2e\n    watched: \"yes\"");
            if let Err(e) = kubectl_in(s, &["create", "-f", "-"], Some(&doc)) {
                return Some(Err(e));
            }
            match next_event(Duration::from_secs(2)) {
                Some(line) => Some(Ok(line)),
                None if Instant::now() > deadline => {
                    Some(Err("kubectl get -w printed no event".into()))
                }
                None => None,
            }
        });
        let line = first.ok_or("no event")??;
        check(
            line.starts_with("ADDED") && line.contains("watched-0"),
            || line.clone(),
        )?;
        kubectl_ok(s, &["label", "configmap", "watched-0", "-n", NS, "more=1"])?;
        let line = next_event(Duration::from_secs(10)).ok_or("no MODIFIED event")?;
        check(
            line.starts_with("MODIFIED") && line.contains("watched-0"),
            || line.clone(),
        )
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn stale_update_is_a_conflict(s: &Suite) -> Result<(), Failed> {
    kubectl_in(
        s,
        &["create", "-f", "-"],
        Some(&configmap_yaml("stale", "0")),
    )?;
    let original = kubectl_ok(s, &["get", "configmap", "stale", "-n", NS, "-o", "json"])?;
    let mut first = json(&original)?;
    first["data"]["key"] = "1".into();
    kubectl_in(s, &["replace", "-f", "-"], Some(&first.to_string()))?;
    // The same resourceVersion again: someone else wrote in between.
    let mut second = json(&original)?;
    second["data"]["key"] = "2".into();
    let err = kubectl_err(
        s,
        &admin_kc(s),
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
    let data = kubectl_ok(
        s,
        &[
            "get",
            "configmap",
            "stale",
            "-n",
            NS,
            "-o",
            "jsonpath={.data.key}",
        ],
    )?;
    check(data == "1", || data.clone())?;
    Ok(())
}

/// The admin registers nodes (see `nodes_register_themselves` for the
/// node's own create), then each node's credentials are held to its own.
fn ensure_nodes(s: &Suite) -> Result<(), Failed> {
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

fn lease_yaml(name: &str) -> String {
    format!("apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: {name}\n  namespace: kube-node-lease\nspec:\n  holderIdentity: {name}\n  leaseDurationSeconds: 40\n")
}

fn nodes_write_only_their_own_objects(s: &Suite) -> Result<(), Failed> {
    ensure_nodes(s)?;
    let n1 = cp(s).node_kubeconfig("node-1");
    let out = kubectl_as(s, &n1, &["label", "node", "node-1", "own=yes"], None)?;
    check(out.status.success(), || {
        format!("node-1 labels itself: {}", text(&out.stderr))
    })?;
    let err = kubectl_err(s, &n1, &["label", "node", "node-2", "evil=yes"], None)?;
    check(
        err.contains("Forbidden") || err.contains("forbidden"),
        || err.clone(),
    )?;
    let err = kubectl_err(s, &n1, &["create", "-f", "-"], Some(&node_yaml("node-3")))?;
    check(err.contains("orbidden"), || err.clone())?;
    let err = kubectl_err(s, &n1, &["delete", "node", "node-2"], None)?;
    check(err.contains("orbidden"), || err.clone())?;
    let err = kubectl_err(
        s,
        &n1,
        &["create", "-f", "-"],
        Some(&configmap_yaml("by-node", "x")),
    )?;
    check(err.contains("orbidden"), || err.clone())?;
    let err = kubectl_err(s, &n1, &["create", "-f", "-"], Some(&lease_yaml("node-2")))?;
    check(err.contains("orbidden"), || err.clone())?;
    // Its own Lease (made by the admin here) it may renew.
    let _ = kubectl(s, &["create", "-f", "-"], Some(&lease_yaml("node-1")))?;
    let out = kubectl_as(
        s,
        &n1,
        &[
            "patch",
            "lease",
            "node-1",
            "-n",
            "kube-node-lease",
            "--type=merge",
            "-p",
            r#"{"spec":{"leaseDurationSeconds":41}}"#,
        ],
        None,
    )?;
    check(out.status.success(), || {
        format!("own lease: {}", text(&out.stderr))
    })?;
    // Reads are open to nodes.
    let out = kubectl_as(s, &n1, &["get", "nodes", "-o", "name"], None)?;
    check(text(&out.stdout).contains("node/node-2"), || {
        text(&out.stderr)
    })?;
    // Raw: the 403 is a Status with reason Forbidden.
    let (code, body) = curl(
        s,
        Some("node-node-1"),
        "PATCH",
        "/api/v1/nodes/node-2",
        Some((
            "application/merge-patch+json",
            r#"{"metadata":{"labels":{"x":"y"}}}"#,
        )),
    )?;
    check(code == 403 && json(&body)?["reason"] == "Forbidden", || {
        format!("{code} {body}")
    })?;
    Ok(())
}

/// `kubectl auth can-i` (a SelfSubjectAccessReview) gets the answer the
/// request itself would get; `auth whoami` (a SelfSubjectReview) names the
/// caller; a malformed review is a Status, 400 or 422.
fn auth_can_i_and_whoami(s: &Suite) -> Result<(), Failed> {
    let admin = admin_kc(s);
    let n1 = cp(s).node_kubeconfig("node-1");
    let can_i = |kc: &Path, args: &[&str]| -> Result<(String, Option<i32>), Failed> {
        let mut all = vec!["auth", "can-i"];
        all.extend_from_slice(args);
        let out = kubectl_as(s, kc, &all, None)?;
        if !matches!(out.status.code(), Some(0 | 1)) || out.stdout.is_empty() {
            return Err(format!("kubectl {all:?}: {}", text(&out.stderr)).into());
        }
        Ok((text(&out.stdout).trim().to_string(), out.status.code()))
    };
    let r = can_i(&admin, &["create", "pods"])?;
    check(r == ("yes".into(), Some(0)), || {
        format!("admin create pods: {r:?}")
    })?;
    // kubectl prints the review's reason after the "no".
    let r = can_i(&n1, &["update", "nodes/node-2"])?;
    check(
        r.0 == "no - node 'node-1' cannot modify node 'node-2'" && r.1 == Some(1),
        || format!("node-1 on node-2: {r:?}"),
    )?;
    let r = can_i(&n1, &["update", "nodes/node-1"])?;
    check(r == ("yes".into(), Some(0)), || {
        format!("node-1 on itself: {r:?}")
    })?;
    let r = can_i(&n1, &["create", "configmaps", "-n", NS])?;
    check(r.0.starts_with("no - ") && r.1 == Some(1), || {
        format!("node-1 configmaps: {r:?}")
    })?;
    // Reads: open to nodes, except secrets and configmaps, which only
    // their pods' references unlock (the same rule as a real request).
    let r = can_i(&n1, &["list", "pods", "-A"])?;
    check(r == ("yes".into(), Some(0)), || {
        format!("node-1 reads pods: {r:?}")
    })?;
    let r = can_i(&n1, &["list", "secrets", "-A"])?;
    check(r.0.starts_with("no") && r.1 == Some(1), || {
        format!("node-1 lists secrets: {r:?}")
    })?;
    let r = can_i(&n1, &["get", "secrets/nobody-uses-this", "-n", NS])?;
    check(r.0.starts_with("no") && r.1 == Some(1), || {
        format!("node-1 gets an unreferenced secret: {r:?}")
    })?;
    // --list: everything for the admin; for a node an incomplete list.
    let out = kubectl_as(s, &admin, &["auth", "can-i", "--list"], None)?;
    check(
        out.status.success() && text(&out.stdout).contains("*.*"),
        || format!("admin --list: {} {}", text(&out.stdout), text(&out.stderr)),
    )?;
    let who = json(&kubectl_ok(s, &["auth", "whoami", "-o", "json"])?)?;
    let groups = who["status"]["userInfo"]["groups"].clone();
    check(
        who["kind"] == "SelfSubjectReview"
            && who["status"]["userInfo"]["username"] == "admin"
            && groups.as_array().is_some_and(|g| {
                g.iter().any(|x| x == "system:masters")
                    && g.iter().any(|x| x == "system:authenticated")
            }),
        || format!("admin whoami: {who}"),
    )?;
    // A token (which beats the certificate) carries the token file's uid.
    let tokens = std::fs::read_to_string(cp(s).pki_dir().join("tokens.csv"))?;
    let (token, uid) = tokens
        .lines()
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|f| f.len() >= 3 && f[1] == "admin")
        .map(|f| (f[0].to_string(), f[2].to_string()))
        .ok_or("no admin token in tokens.csv")?;
    let who = json(&kubectl_ok(
        s,
        &["auth", "whoami", "-o", "json", &format!("--token={token}")],
    )?)?;
    check(who["status"]["userInfo"]["uid"] == uid.as_str(), || {
        format!("token whoami: {who}")
    })?;
    let out = kubectl_as(s, &n1, &["auth", "whoami"], None)?;
    let table = text(&out.stdout);
    check(
        out.status.success()
            && table.contains("system:node:node-1")
            && table.contains("system:nodes"),
        || format!("node whoami: {table} {}", text(&out.stderr)),
    )?;
    let path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    let (code, body) = curl(
        s,
        Some("admin"),
        "POST",
        path,
        Some(("application/json", r#"{"spec":"nope"}"#)),
    )?;
    check(code == 400 && json(&body)?["kind"] == "Status", || {
        format!("{code} {body}")
    })?;
    let (code, body) = curl(
        s,
        Some("admin"),
        "POST",
        path,
        Some(("application/json", r#"{"spec":{}}"#)),
    )?;
    check(code == 422 && json(&body)?["reason"] == "Invalid", || {
        format!("{code} {body}")
    })?;
    let (code, body) = curl(s, Some("admin"), "GET", path, None)?;
    check(code == 405, || format!("{code} {body}"))?;
    let (code, body) = curl(s, None, "POST", path, Some(("application/json", "{}")))?;
    check(code == 401, || format!("{code} {body}"))?;
    Ok(())
}

/// A node creates its own Node and Lease (the kubelet's registration) and
/// no other: needs the API server to give the authorizer the name from the
/// body of a create.
fn nodes_register_themselves(s: &Suite) -> Result<(), Failed> {
    let n1 = cp(s).node_kubeconfig("node-1");
    let _ = kubectl(s, &["delete", "node", "node-1", "--ignore-not-found"], None)?;
    let _ = kubectl(
        s,
        &[
            "delete",
            "lease",
            "node-1",
            "-n",
            "kube-node-lease",
            "--ignore-not-found",
        ],
        None,
    )?;
    let out = kubectl_as(s, &n1, &["create", "-f", "-"], Some(&node_yaml("node-1")))?;
    check(out.status.success(), || {
        format!("node-1 registering itself: {}", text(&out.stderr))
    })?;
    let out = kubectl_as(s, &n1, &["create", "-f", "-"], Some(&lease_yaml("node-1")))?;
    check(out.status.success(), || {
        format!("own lease: {}", text(&out.stderr))
    })?;
    let err = kubectl_err(s, &n1, &["create", "-f", "-"], Some(&node_yaml("node-9")))?;
    check(err.contains("orbidden"), || err.clone())?;
    Ok(())
}

fn kube_rs_client_with_node_credentials(s: &Suite) -> Result<(), Failed> {
    kubectl_in(
        s,
        &["create", "-f", "-"],
        Some(&pod_yaml(
            "kube-rs-pod",
            Some("node-1"),
            "    app: kube-rs\n",
        )),
    )?;
    kubectl_in(
        s,
        &["create", "-f", "-"],
        Some(&pod_yaml(
            "kube-rs-other",
            Some("node-2"),
            "    app: kube-rs\n",
        )),
    )?;
    ensure_nodes(s)?;
    let kc = cp(s).node_kubeconfig("node-1");
    with_kube(s, kc, |client| {
        Box::pin(async move {
            let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
            let mine = pods
                .list(
                    &ListParams::default()
                        .fields("spec.nodeName=node-1")
                        .labels("app=kube-rs"),
                )
                .await
                .map_err(|e| format!("list pods: {e}"))?;
            let names: Vec<_> = mine
                .items
                .iter()
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            check(names == ["kube-rs-pod"], || format!("{names:?}"))?;
            let status = serde_json::json!({"status": {"phase": "Running", "podIP": "10.244.1.5"}});
            let pp = PatchParams::default();
            let own = pods
                .patch_status("kube-rs-pod", &pp, &Patch::Merge(&status))
                .await;
            check(api_code(own)? == 200, || {
                "node-1 patches its pod's status".into()
            })?;
            let other = pods
                .patch_status("kube-rs-other", &pp, &Patch::Merge(&status))
                .await;
            check(api_code(other)? == 403, || {
                "node-1 patches node-2's pod".into()
            })?;
            let nodes: Api<Node> = Api::all(client.clone());
            let ready = serde_json::json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ready"}]}});
            let patched = nodes
                .patch_status("node-1", &pp, &Patch::Merge(&ready))
                .await
                .map_err(|e| format!("patch own node status: {e}"))?;
            let cond = patched
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default();
            check(
                cond.iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True"),
                || format!("{cond:?}"),
            )?;
            let other = nodes
                .patch_status("node-2", &pp, &Patch::Merge(&ready))
                .await;
            check(api_code(other)? == 403, || {
                "node-1 patches node-2's status".into()
            })?;
            Ok(())
        })
    })?;
    let phase = kubectl_ok(
        s,
        &[
            "get",
            "pod",
            "kube-rs-pod",
            "-n",
            NS,
            "-o",
            "jsonpath={.status.phase}",
        ],
    )?;
    check(phase == "Running", || phase.clone())?;
    Ok(())
}

fn secret_yaml(name: &str) -> String {
    format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {NS}\nstringData:\n  key: v\n")
}

/// Kubernetes' Node authorizer reads: a node gets the secrets and
/// configmaps its pods reference (and watches them one by one, as the
/// kubelet does), nothing else, and never a whole namespace of them.
fn nodes_read_only_secrets_their_pods_use(s: &Suite) -> Result<(), Failed> {
    ensure_nodes(s)?;
    for n in ["na-vol", "na-pull", "na-free", "na-other"] {
        kubectl_in(s, &["apply", "-f", "-"], Some(&secret_yaml(n)))?;
    }
    kubectl_in(
        s,
        &["apply", "-f", "-"],
        Some(&configmap_yaml("na-env", "x")),
    )?;
    kubectl_in(
        s,
        &["apply", "-f", "-"],
        Some(&configmap_yaml("na-free-cm", "x")),
    )?;
    let mine = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: na-mine\n  namespace: {NS}\nspec:\n  nodeName: node-1\n  imagePullSecrets:\n  - name: na-pull\n  - name: na-missing\n  containers:\n  - name: main\n    image: capstan.test/testsrv:latest\n    envFrom:\n    - configMapRef:\n        name: na-env\n  volumes:\n  - name: v\n    projected:\n      sources:\n      - secret:\n          name: na-vol\n"
    );
    let other = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: na-theirs\n  namespace: {NS}\nspec:\n  nodeName: node-2\n  containers:\n  - name: main\n    image: capstan.test/testsrv:latest\n  volumes:\n  - name: v\n    secret:\n      secretName: na-other\n"
    );
    kubectl_in(s, &["apply", "-f", "-"], Some(&mine))?;
    kubectl_in(s, &["apply", "-f", "-"], Some(&other))?;
    let kc = cp(s).node_kubeconfig("node-1");
    with_kube(s, kc, |client| {
        Box::pin(async move {
            let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
            let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
            for n in ["na-vol", "na-pull"] {
                check(api_code(secrets.get(n).await)? == 200, || {
                    format!("get {n}")
                })?;
            }
            check(api_code(cms.get("na-env").await)? == 200, || {
                "get na-env".into()
            })?;
            // Referenced but never made: the node may learn it is missing.
            check(api_code(secrets.get("na-missing").await)? == 404, || {
                "get na-missing".into()
            })?;
            for n in ["na-free", "na-other"] {
                match secrets.get(n).await {
                    Err(kube::Error::Api(e)) => check(
                        e.code == 403
                            && e.reason == "Forbidden"
                            && e.message
                                == format!(
                                    "secrets \"{n}\" is forbidden: User \"system:node:node-1\" cannot get resource \"secrets\" in API group \"\" in the namespace \"{NS}\": no relationship found between node 'node-1' and this object"
                                ),
                        || format!("{n}: {e:?}"),
                    )?,
                    other => return Err(format!("{n}: {other:?}").into()),
                }
            }
            check(api_code(cms.get("na-free-cm").await)? == 403, || {
                "get na-free-cm".into()
            })?;
            check(
                api_code(secrets.list(&ListParams::default()).await)? == 403,
                || "list secrets".into(),
            )?;
            check(
                api_code(cms.list(&ListParams::default()).await)? == 403,
                || "list configmaps".into(),
            )?;
            // One object by name, the kubelet's way: allowed when used.
            let one = |n: &str| ListParams::default().fields(&format!("metadata.name={n}"));
            let got = secrets
                .list(&one("na-vol"))
                .await
                .map_err(|e| format!("list by name: {e}"))?;
            check(got.items.len() == 1, || format!("{:?}", got.items.len()))?;
            check(
                api_code(secrets.list(&one("na-free")).await)? == 403,
                || "list na-free by name".into(),
            )?;
            let wp = |n: &str| {
                WatchParams::default()
                    .fields(&format!("metadata.name={n}"))
                    .timeout(1)
            };
            check(watch_code(&secrets, &wp("na-vol")).await? == 200, || {
                "watch na-vol by name".into()
            })?;
            check(watch_code(&secrets, &wp("na-free")).await? == 403, || {
                "watch na-free by name".into()
            })?;
            Ok(())
        })
    })?;
    // Once the pod is gone, so is the node's access.
    kubectl_ok(
        s,
        &[
            "delete",
            "pod",
            "na-mine",
            "-n",
            NS,
            "--force",
            "--grace-period=0",
        ],
    )?;
    let kc = cp(s).node_kubeconfig("node-1");
    with_kube(s, kc, |client| {
        Box::pin(async move {
            let secrets: Api<Secret> = Api::namespaced(client, NS);
            check(api_code(secrets.get("na-vol").await)? == 403, || {
                "get na-vol after its pod went".into()
            })
        })
    })?;
    // The admin is unchanged.
    let out = kubectl_ok(s, &["get", "secrets", "-n", NS, "-o", "name"])?;
    check(out.contains("secret/na-free"), || out.clone())?;
    Ok(())
}

/// The code a watch answers with: its own, or its first event's.
async fn watch_code(secrets: &Api<Secret>, wp: &WatchParams) -> Result<u16, Failed> {
    use futures::StreamExt;
    let stream = match secrets.watch(wp, "0").await {
        Ok(st) => st,
        Err(e) => return api_code(Err::<(), _>(e)),
    };
    let mut stream = Box::pin(stream);
    Ok(match stream.next().await {
        Some(Ok(WatchEvent::Error(e))) => e.code,
        Some(Err(kube::Error::Api(e))) => e.code,
        Some(Err(e)) => return Err(format!("watch: {e}").into()),
        _ => 200,
    })
}

fn malformed_inputs(s: &Suite) -> Result<(), Failed> {
    // Over HTTP/2 (kubectl): the early 413 arrives.
    let huge_yaml = configmap_yaml("huge-h2", &"x".repeat(4 * 1024 * 1024));
    let err = kubectl_err(s, &admin_kc(s), &["create", "-f", "-"], Some(&huge_yaml))?;
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
        &admin_kc(s),
        &["create", "-f", "-"],
        Some("kind: [unclosed"),
    )?;
    check(!err.is_empty(), || "bad YAML".into())?;
    let err = kubectl_err(
        s,
        &admin_kc(s),
        &["create", "-f", "-"],
        Some(&configmap_yaml("x", "y").replace("  name: x\n", "")),
    )?;
    check(err.contains("name"), || err.clone())?;
    Ok(())
}

/// The fields the server fills in per object, different between any two;
/// and Go's zero values (0, false), which protobuf carries for every value
/// field while Go's JSON leaves them out (Kubernetes reads both as unset).
fn comparable(mut v: serde_json::Value) -> serde_json::Value {
    fn strip_zeros(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.retain(|_, x| !(x == &serde_json::json!(0) || x == &serde_json::json!(false)));
                m.values_mut().for_each(strip_zeros);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip_zeros),
            _ => {}
        }
    }
    if let Some(m) = v["metadata"].as_object_mut() {
        for k in [
            "namespace",
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "managedFields",
        ] {
            m.remove(k);
        }
    }
    if let Some(spec) = v["spec"].as_object_mut() {
        // Allocated per service.
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    }
    strip_zeros(&mut v);
    v
}

/// kubectl's generators send protobuf: each one creates in namespace A,
/// and the object it prints with `--dry-run=client -o json` (the very
/// object it would send) goes to namespace B with `create -f` (JSON). Both
/// must read back the same, and carry what the generator was asked for.
fn protobuf_generators_match_create_f(s: &Suite) -> Result<(), Failed> {
    let (a, b) = ("proto-a", "proto-b");
    // `create namespace` is a generator too.
    for ns in [a, b] {
        kubectl_ok(s, &["create", "namespace", ns])?;
    }
    let result = (|| -> Result<(), Failed> {
        let ns = json(&kubectl_ok(s, &["get", "namespace", a, "-o", "json"])?)?;
        check(ns["metadata"]["name"] == a, || format!("namespace: {ns}"))?;
        let generators: &[(&str, &str, &[&str])] = &[
            (
                "configmap",
                "cm1",
                &[
                    "create",
                    "configmap",
                    "cm1",
                    "--from-literal=greeting=hello world",
                    "--from-literal=empty=",
                ],
            ),
            (
                "secret",
                "sec1",
                &[
                    "create",
                    "secret",
                    "generic",
                    "sec1",
                    "--from-literal=password=s3cr3t\u{1}",
                ],
            ),
            (
                "deployment",
                "web",
                &[
                    "create",
                    "deployment",
                    "web",
                    "--image=registry.local/web:1.2",
                    "--replicas=2",
                    "--port=8080",
                ],
            ),
            (
                "deployment",
                "zero",
                &[
                    "create",
                    "deployment",
                    "zero",
                    "--image=registry.local/web:1.2",
                    "--replicas=0",
                ],
            ),
            (
                "service",
                "svc1",
                &["create", "service", "clusterip", "svc1", "--tcp=80:8080"],
            ),
            (
                "service",
                "web-svc",
                &[
                    "expose",
                    "deployment",
                    "web",
                    "--name=web-svc",
                    "--port=80",
                    "--target-port=8080",
                ],
            ),
            (
                "pod",
                "runner",
                &[
                    "run",
                    "runner",
                    "--image=registry.local/busybox:1",
                    "--restart=Never",
                    "--labels=app=runner,tier=test",
                    "--env=MODE=proto",
                    "--",
                    "sleep",
                    "3600",
                ],
            ),
        ];
        for (kind, name, args) in generators {
            // Flags go before a `--` (after it they are the container's).
            let with_ns = |ns: &str, extra: &[&str]| {
                let at = args.iter().position(|a| *a == "--").unwrap_or(args.len());
                let mut v: Vec<String> = args[..at].iter().map(|a| a.to_string()).collect();
                v.extend(["-n".to_string(), ns.to_string()]);
                v.extend(extra.iter().map(|e| e.to_string()));
                v.extend(args[at..].iter().map(|a| a.to_string()));
                v
            };
            let run_args = with_ns(a, &[]);
            let refs: Vec<&str> = run_args.iter().map(String::as_str).collect();
            kubectl_ok(s, &refs)?;
            let dry = with_ns(b, &["--dry-run=client", "-o", "json"]);
            let refs: Vec<&str> = dry.iter().map(String::as_str).collect();
            let manifest = kubectl_ok(s, &refs)?;
            kubectl_in(s, &["create", "-n", b, "-f", "-"], Some(&manifest))?;
            let got = |ns: &str| -> Result<serde_json::Value, Failed> {
                json(&kubectl_ok(
                    s,
                    &["get", kind, name, "-n", ns, "-o", "json"],
                )?)
            };
            let (pa, pb) = (comparable(got(a)?), comparable(got(b)?));
            check(pa == pb, || {
                format!("{kind}/{name}: protobuf create\n{pa:#}\ndiffers from create -f\n{pb:#}")
            })?;
        }
        // And what each was asked for.
        let cm = json(&kubectl_ok(
            s,
            &["get", "cm", "cm1", "-n", a, "-o", "json"],
        )?)?;
        check(
            cm["data"]["greeting"] == "hello world" && cm["data"]["empty"] == "",
            || format!("configmap: {cm}"),
        )?;
        let pw = kubectl_ok(
            s,
            &[
                "get",
                "secret",
                "sec1",
                "-n",
                a,
                "-o",
                "jsonpath={.data.password}",
            ],
        )?;
        let pw = base64_decode(&pw)?;
        check(pw == b"s3cr3t\x01", || format!("secret decodes to {pw:?}"))?;
        let d = json(&kubectl_ok(
            s,
            &["get", "deploy", "web", "-n", a, "-o", "json"],
        )?)?;
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        check(
            d["spec"]["replicas"] == 2
                && d["spec"]["selector"]["matchLabels"]["app"] == "web"
                && d["spec"]["template"]["metadata"]["labels"]["app"] == "web"
                && d["metadata"]["labels"]["app"] == "web"
                && c["image"] == "registry.local/web:1.2"
                && c["ports"][0]["containerPort"] == 8080,
            || format!("deployment: {d}"),
        )?;
        let zero = kubectl_ok(
            s,
            &[
                "get",
                "deploy",
                "zero",
                "-n",
                a,
                "-o",
                "jsonpath={.spec.replicas}",
            ],
        )?;
        check(zero == "0", || format!("--replicas=0 reads back {zero:?}"))?;
        let svc = json(&kubectl_ok(
            s,
            &["get", "svc", "web-svc", "-n", a, "-o", "json"],
        )?)?;
        check(
            svc["spec"]["selector"]["app"] == "web"
                && svc["spec"]["ports"][0]["port"] == 80
                && svc["spec"]["ports"][0]["targetPort"] == 8080
                && svc["spec"]["clusterIP"]
                    .as_str()
                    .is_some_and(|ip| !ip.is_empty()),
            || format!("exposed service: {svc}"),
        )?;
        let pod = json(&kubectl_ok(
            s,
            &["get", "pod", "runner", "-n", a, "-o", "json"],
        )?)?;
        let c = &pod["spec"]["containers"][0];
        check(
            pod["metadata"]["labels"]["tier"] == "test"
                && pod["spec"]["restartPolicy"] == "Never"
                && c["image"] == "registry.local/busybox:1"
                && c["args"] == serde_json::json!(["sleep", "3600"])
                && c["env"][0]["value"] == "proto",
            || format!("pod: {pod}"),
        )?;
        Ok(())
    })();
    for ns in [a, b] {
        let _ = kubectl(s, &["delete", "namespace", ns, "--wait=false"], None);
    }
    result
}

fn base64_decode(s: &str) -> Result<Vec<u8>, Failed> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| format!("base64 {s:?}: {e}").into())
}

fn malformed_protobuf_is_400(s: &Suite) -> Result<(), Failed> {
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

/// A DELETE whose object stays (a finalizer holds it) answers 200 with
/// the object, as Kubernetes does; 202 only for `orphanDependents: false`,
/// here sent as a protobuf DeleteOptions body like client-go's typed
/// clients send it.
fn delete_answers_200_unless_cascading_was_asked(s: &Suite) -> Result<(), Failed> {
    let name = "held-by-finalizer";
    let item = format!("/api/v1/namespaces/{NS}/configmaps/{name}");
    kubectl_in(
        s,
        &["create", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {NS}\n  finalizers: [capstan.test/hold]\n"
        )),
    )?;
    let result = (|| -> Result<(), Failed> {
        let (code, body) = curl(
            s,
            Some("admin"),
            "DELETE",
            &item,
            Some((
                "application/json",
                r#"{"kind":"DeleteOptions","apiVersion":"v1"}"#,
            )),
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
        let (code, body) = curl(
            s,
            Some("admin"),
            "DELETE",
            &item,
            Some(("application/vnd.kubernetes.protobuf", proto)),
        )?;
        check(code == 202, || {
            format!("orphanDependents=false (protobuf body): {code} {body}")
        })?;
        // A body that is not DeleteOptions is refused.
        let (code, body) = curl(
            s,
            Some("admin"),
            "DELETE",
            &item,
            Some((
                "application/json",
                r#"{"kind":"ConfigMap","apiVersion":"v1"}"#,
            )),
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
    kubectl_in(
        s,
        &["create", "-f", "-"],
        Some(&configmap_yaml("deleted-at-once", "x")),
    )?;
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

/// `/openapi/v2` in the protobuf form client-go before 1.27 asks for.
fn openapi_v2_protobuf(s: &Suite) -> Result<(), Failed> {
    let (mut c, pki, server) = {
        let cp = cp(s);
        (cp.command("curl")?, cp.pki_dir().to_path_buf(), cp.server())
    };
    let out_file = s.lab.dir().join("openapi-v2.pb");
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
    let out = run(c, None)?;
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

// ------------------------------------------------------ kubectl 1.20

fn kubectl_1_20(s: &Suite, args: &[&str], stdin: Option<&str>) -> Result<Output, Failed> {
    let (mut c, admin) = {
        let cp = cp(s);
        (cp.command(KUBECTL_1_20)?, cp.admin_kubeconfig())
    };
    c.arg("--kubeconfig")
        .arg(admin)
        .arg("--request-timeout=30s")
        .args(args);
    run(c, stdin)
}

fn kubectl_1_20_ok(s: &Suite, args: &[&str], stdin: Option<&str>) -> Result<String, Failed> {
    let out = kubectl_1_20(s, args, stdin)?;
    if !out.status.success() {
        return Err(format!("kubectl 1.20 {args:?} failed: {}", text(&out.stderr)).into());
    }
    Ok(text(&out.stdout))
}

fn kubectl_1_20_err(s: &Suite, args: &[&str], stdin: Option<&str>) -> Result<String, Failed> {
    let out = kubectl_1_20(s, args, stdin)?;
    if out.status.success() {
        return Err(format!(
            "kubectl 1.20 {args:?} succeeded but should not: {}",
            text(&out.stdout)
        )
        .into());
    }
    Ok(text(&out.stderr))
}

/// kubectl 1.20 has `auth can-i` (authorization.k8s.io/v1), not `whoami`.
fn kubectl_1_20_auth_can_i(s: &Suite) -> Result<(), Failed> {
    let out = kubectl_1_20_ok(s, &["auth", "can-i", "create", "pods"], None)?;
    check(out.trim() == "yes", || out.clone())
}

/// Client-side validation and `explain` both read the protobuf OpenAPI v2
/// document: a manifest with an unknown field is refused before it is
/// sent, one with a missing required field too, a correct one is created.
fn kubectl_1_20_validates_explains_gets_deletes(s: &Suite) -> Result<(), Failed> {
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
fn kubectl_1_20_apply_twice(s: &Suite) -> Result<(), Failed> {
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
            kubectl_ok(
                s,
                &[
                    "get",
                    "deployment",
                    "v120-applied",
                    "-n",
                    NS,
                    "-o",
                    "jsonpath={.metadata.resourceVersion}",
                ],
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
        let d = json(&kubectl_ok(
            s,
            &["get", "deployment", "v120-applied", "-n", NS, "-o", "json"],
        )?)?;
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
fn kubectl_1_20_generators(s: &Suite) -> Result<(), Failed> {
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
        let cm = json(&kubectl_ok(
            s,
            &["get", "configmap", "gen-cm", "-n", ns, "-o", "json"],
        )?)?;
        check(cm["data"]["greeting"] == "hello world", || format!("{cm}"))?;
        let pw = kubectl_ok(
            s,
            &[
                "get",
                "secret",
                "gen-sec",
                "-n",
                ns,
                "-o",
                "jsonpath={.data.password}",
            ],
        )?;
        check(base64_decode(&pw)? == b"s3cr3t", || format!("secret: {pw}"))?;
        let d = json(&kubectl_ok(
            s,
            &["get", "deploy", "gen-web", "-n", ns, "-o", "json"],
        )?)?;
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

fn metrics_count_requests(s: &Suite) -> Result<(), Failed> {
    // Its own requests to count, so it also passes when run alone.
    kubectl_ok(s, &["get", "configmaps", "-n", NS])?;
    let (code, _) = curl(s, None, "GET", "/api/v1/pods", None)?;
    check(code == 401, || format!("anonymous: {code}"))?;
    let (code, body) = curl(s, Some("admin"), "GET", "/metrics", None)?;
    check(code == 200, || format!("{code} {body}"))?;
    check(
        body.contains(
            r#"capstan_apiserver_requests_total{verb="list",resource="configmaps",code="200"}"#,
        ),
        || body.clone(),
    )?;
    check(body.contains(r#"code="401""#), || "401s are counted".into())?;
    let (code, _) = curl(s, Some("node-node-1"), "GET", "/metrics", None)?;
    check(code == 403, || format!("node reads /metrics: {code}"))?;
    Ok(())
}

fn objects_survive_a_restart(s: &Suite) -> Result<(), Failed> {
    kubectl_in(
        s,
        &["create", "-f", "-"],
        Some(&configmap_yaml("durable", "kept")),
    )?;
    let uid = kubectl_ok(
        s,
        &[
            "get",
            "configmap",
            "durable",
            "-n",
            NS,
            "-o",
            "jsonpath={.metadata.uid}",
        ],
    )?;
    cp(s).crash_and_restart()?;
    let after = kubectl_ok(
        s,
        &[
            "get",
            "configmap",
            "durable",
            "-n",
            NS,
            "-o",
            "jsonpath={.metadata.uid} {.data.key}",
        ],
    )?;
    check(after == format!("{uid} kept"), || after.clone())?;
    cp(s).restart()?;
    let after = kubectl_ok(
        s,
        &[
            "get",
            "configmap",
            "durable",
            "-n",
            NS,
            "-o",
            "jsonpath={.data.key}",
        ],
    )?;
    check(after == "kept", || after.clone())?;
    Ok(())
}

fn watch_resumes_after_a_restart(s: &Suite) -> Result<(), Failed> {
    kubectl_in(
        s,
        &["create", "-f", "-"],
        Some(&configmap_yaml("resumed", "before")),
    )?;
    let rv = kubectl_ok(
        s,
        &[
            "get",
            "configmap",
            "resumed",
            "-n",
            NS,
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ],
    )?;
    cp(s).restart()?;
    kubectl_ok(
        s,
        &[
            "patch",
            "configmap",
            "resumed",
            "-n",
            NS,
            "--type=merge",
            "-p",
            r#"{"data":{"key":"after"}}"#,
        ],
    )?;
    let kc = cp(s).admin_kubeconfig();
    with_kube(s, kc, move |client| {
        Box::pin(async move {
            use futures::{StreamExt, TryStreamExt};
            let cms: Api<ConfigMap> = Api::namespaced(client, NS);
            let wp = WatchParams::default()
                .fields("metadata.name=resumed")
                .timeout(10);
            let stream = cms
                .watch(&wp, &rv)
                .await
                .map_err(|e| format!("watch from {rv}: {e}"))?;
            let mut stream = stream.boxed();
            let first = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
                .await
                .map_err(|_| "no event after resuming")?
                .map_err(|e| format!("watch stream: {e}"))?
                .ok_or("watch ended without an event")?;
            match first {
                WatchEvent::Modified(cm) => {
                    let data = cm.data.unwrap_or_default();
                    check(data.get("key").map(String::as_str) == Some("after"), || {
                        format!("{data:?}")
                    })
                }
                other => Err(format!("first event after {rv}: {other:?}").into()),
            }
        })
    })?;
    // A resourceVersion that was never issued is still answered (not hung).
    let (code, _) = curl(
        s,
        Some("admin"),
        "GET",
        &format!("/api/v1/namespaces/{NS}/configmaps?watch=1&resourceVersion=1&timeoutSeconds=1"),
        None,
    )?;
    check(code == 200 || code == 410, || {
        format!("watch from rv 1: {code}")
    })?;
    Ok(())
}
